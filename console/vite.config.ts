import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

// The gateway serves the built console at /console/ on the API's own origin, so every API call
// is relative (/api/v1/...). `npm run dev` passes /api on to a local gateway.
export default defineConfig({
  base: '/console/',
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
  },
  server: {
    port: 5173,
    strictPort: true,
    proxy: {
      '/api': { target: 'http://127.0.0.1:8000', changeOrigin: false },
    },
  },
})
