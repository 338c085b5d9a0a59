import { defineConfig } from 'vitest/config';

// The app is served by the sightline binary from dist/; `npm run dev` proxies the API to a
// sightline running on its default address.
export default defineConfig({
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Everything in separate files: the server's CSP allows no inline script or style.
    assetsInlineLimit: 0,
  },
  server: {
    proxy: {
      '/api': 'http://127.0.0.1:8080',
    },
  },
  test: {
    environment: 'happy-dom',
    include: ['test/**/*.test.{ts,tsx}'],
  },
});
