/**
 * bench/bench-app.ts with its hello world marked cacheable (`Cache-Control: public,
 * max-age=60`): the `cached` end-to-end target, where the ingress answers `GET /` from memory
 * and the tab is asked once. Everything else is the plain app's, uncached.
 */
import app from './bench-app.ts';

export default {
  async fetch(request: Request): Promise<Response> {
    const response = await app.fetch(request);
    if (request.method !== 'GET' || new URL(request.url).pathname !== '/') return response;
    const headers = new Headers(response.headers);
    headers.set('cache-control', 'public, max-age=60');
    return new Response(response.body, { status: response.status, headers });
  },
};
