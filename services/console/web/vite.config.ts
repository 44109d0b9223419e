import { defineConfig } from "vite";

// Fixed output names: the Rust crate embeds these files by name (services/console/src/pages.rs).
export default defineConfig({
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "../dist",
    emptyOutDir: true,
    target: "es2022",
    modulePreload: false,
    reportCompressedSize: true,
    rollupOptions: {
      output: {
        entryFileNames: "assets/console.js",
        chunkFileNames: "assets/console-[name].js",
        assetFileNames: "assets/console[extname]",
        inlineDynamicImports: true,
      },
    },
  },
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
  },
});
