import { defineConfig } from 'vitest/config';

// The build lands in dist/app, which the Go package web/ui embeds; dist/index.html
// is the committed placeholder served when the UI has not been built.
export default defineConfig({
  base: '/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  // `npm run dev` serves the sources with hot reload against a Vigil on :8080.
  server: {
    proxy: { '/api': { target: 'http://127.0.0.1:8080', ws: true } },
  },
  build: {
    outDir: 'dist/app',
    emptyOutDir: true,
    target: 'es2022',
    // Inline nothing as data: URLs beyond images; scripts and styles stay files (CSP).
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    reportCompressedSize: true,
  },
  test: {
    environment: 'node',
    include: ['src/**/*.test.ts'],
  },
});
