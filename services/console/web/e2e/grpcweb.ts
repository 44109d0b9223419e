// A gRPC-Web client without a browser and without Connect: the wire format by hand (5-byte frames,
// trailers in a 0x80 frame), so the server's gRPC-Web is checked independently of the console's
// own client library.

import { fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape, create } from "@bufbuild/protobuf";

export interface GrpcWebResult<O> {
  httpStatus: number;
  grpcStatus: number;
  grpcMessage: string;
  messages: O[];
  contentType: string | null;
}

export function frame(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + bytes.length);
  new DataView(out.buffer).setUint32(1, bytes.length);
  out.set(bytes, 5);
  return out;
}

function parseTrailers(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of text.split("\r\n")) {
    const at = line.indexOf(":");
    if (at > 0) map.set(line.slice(0, at).trim().toLowerCase(), line.slice(at + 1).trim());
  }
  return map;
}

/**
 * Calls `path` (`/vigil.v1.SessionRegistry/GetStats`) with `application/grpc-web+proto` over
 * HTTP/1.1. For a server stream, `until` stops reading once it returns true for a message.
 */
export async function grpcWeb<I extends DescMessage, O extends DescMessage>(
  base: string,
  path: string,
  input: I,
  value: MessageInitShape<I>,
  output: O,
  options: { token?: string; origin?: string; until?: (message: MessageShape<O>) => boolean } = {},
): Promise<GrpcWebResult<MessageShape<O>>> {
  const headers: Record<string, string> = { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.origin) headers.origin = options.origin;
  const controller = new AbortController();
  const response = await fetch(base + path, {
    method: "POST",
    headers,
    body: frame(toBinary(input, create(input, value))),
    signal: controller.signal,
  });
  const result: GrpcWebResult<MessageShape<O>> = {
    httpStatus: response.status,
    grpcStatus: Number(response.headers.get("grpc-status") ?? -1),
    grpcMessage: decodeURIComponent(response.headers.get("grpc-message") ?? ""),
    messages: [],
    contentType: response.headers.get("content-type"),
  };
  if (!response.body) return result;
  const reader = response.body.getReader();
  let buffer = new Uint8Array(0);
  for (;;) {
    const { value: chunk, done } = await reader.read();
    if (chunk) {
      const joined = new Uint8Array(buffer.length + chunk.length);
      joined.set(buffer);
      joined.set(chunk, buffer.length);
      buffer = joined;
    }
    while (buffer.length >= 5) {
      const length = new DataView(buffer.buffer, buffer.byteOffset).getUint32(1);
      if (buffer.length < 5 + length) break;
      const flags = buffer[0];
      const payload = buffer.slice(5, 5 + length);
      buffer = buffer.slice(5 + length);
      if (flags & 0x80) {
        const trailers = parseTrailers(new TextDecoder().decode(payload));
        result.grpcStatus = Number(trailers.get("grpc-status") ?? -1);
        result.grpcMessage = decodeURIComponent(trailers.get("grpc-message") ?? "");
      } else {
        const message = fromBinary(output, payload);
        result.messages.push(message);
        if (options.until?.(message)) {
          controller.abort();
          await reader.cancel().catch(() => {});
          result.grpcStatus = 0;
          return result;
        }
      }
    }
    if (done) return result;
  }
}
