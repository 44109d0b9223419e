// The console's gRPC-Web clients: the same services and the same bearer token as every other client.

import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { ConsoleService } from "./gen/vigil/v1/console_pb";
import { PolicyService } from "./gen/vigil/v1/policy_pb";
import { SessionRegistry } from "./gen/vigil/v1/registry_pb";
import { TerminationService } from "./gen/vigil/v1/termination_pb";

const TOKEN_KEY = "vigil.token";

/** The token of this tab (sessionStorage: gone with the tab, never in the address bar). */
export function storedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}
export function storeToken(token: string | null): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

const bearer: Interceptor = (next) => async (request) => {
  const token = storedToken();
  if (token) request.header.set("authorization", `Bearer ${token}`);
  return next(request);
};

const transport = createGrpcWebTransport({
  baseUrl: window.location.origin,
  interceptors: [bearer],
});

export const registry = createClient(SessionRegistry, transport);
export const termination = createClient(TerminationService, transport);
export const policy = createClient(PolicyService, transport);
export const consoleApi = createClient(ConsoleService, transport);

/** A person-readable message of a failed call. */
export function describeError(error: unknown): string {
  if (error instanceof ConnectError) {
    const what = Code[error.code] ?? "error";
    return `${error.rawMessage || what} (${what.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase()})`;
  }
  return error instanceof Error ? error.message : String(error);
}

export function isUnauthenticated(error: unknown): boolean {
  return error instanceof ConnectError && error.code === Code.Unauthenticated;
}

export { Code, ConnectError };
