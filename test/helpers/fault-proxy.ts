/**
 * A fault-injecting HTTP proxy for tests: it listens on 127.0.0.1 in front of an S3-compatible
 * server (s3rver) and, for a share of requests chosen by a seeded PRNG (so a run can be replayed),
 * answers with an S3 error, resets the connection, or delays the request. Everything else is
 * forwarded unchanged: method, path, headers (Host included, so SigV4 signatures still match) and
 * bodies, streamed both ways. No dependencies beyond node:http.
 */
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
// The same seedable PRNG as the storage fault middleware, so that a seed means the same in both.
import { seededRandom } from '../../src/storage/middleware/faults.js';

export { seededRandom };

export type FaultKind =
  /** 503 SlowDown with an S3 XML error body (throttling). */
  | 'slowDown'
  /** 500 InternalError with an S3 XML error body. */
  | 'internalError'
  /** The client socket is destroyed before anything is forwarded or answered. */
  | 'resetBefore'
  /**
   * The request reaches the server, then the client socket is destroyed halfway through the
   * response body (or, for a response without a body, before the response is sent: the server did
   * the work, the client never hears of it).
   */
  | 'resetMidway'
  /** The request is held for delayMs before it is forwarded. */
  | 'delay';

export const FAULT_KINDS: readonly FaultKind[] = ['slowDown', 'internalError', 'resetBefore', 'resetMidway', 'delay'];

export interface FaultProxyOptions {
  /** The server to forward to, e.g. http://127.0.0.1:41234. */
  target: string;
  /** Share of requests that get a fault, 0..1. */
  faultRate: number;
  /** PRNG seed: the same seed and the same request order give the same faults. */
  seed?: number;
  /** Which faults to inject (equally likely); all kinds by default. */
  kinds?: readonly FaultKind[];
  /** Range of an injected delay in ms; [200, 800] by default. */
  delayMs?: [number, number];
  /** Safety net: the proxy closes itself after this long (ms, default 10 minutes). */
  maxLifetimeMs?: number;
  /** Called with one line per request (for debugging a run). */
  log?: (line: string) => void;
}

export interface FaultStats {
  requests: number;
  forwarded: number;
  faults: Record<FaultKind, number>;
}

export interface FaultProxy {
  /** e.g. http://127.0.0.1:41235 */
  url: string;
  stats(): FaultStats;
  /** Turns injection on or off (e.g. off while setting up, on for the part under test). */
  setEnabled(enabled: boolean): void;
  /** Stops listening, drops every open connection and pending delay; idempotent. */
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'te', 'trailer']);

function forwardableHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!HOP_BY_HOP.has(name.toLowerCase()) && value !== undefined) out[name] = value;
  }
  return out;
}

function s3ErrorXml(code: string, message: string, resource: string, requestId: string): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${code}</Code><Message>${message}</Message><Resource>${escapeXml(resource)}</Resource>` +
    `<RequestId>${requestId}</RequestId></Error>`
  );
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  if (target.protocol !== 'http:') throw new Error(`fault proxy: only http targets are supported, not ${options.target}`);
  const rate = Math.min(1, Math.max(0, options.faultRate));
  const kinds = options.kinds && options.kinds.length > 0 ? [...options.kinds] : [...FAULT_KINDS];
  const [delayMin, delayMax] = options.delayMs ?? [200, 800];
  const random = seededRandom(options.seed ?? 1);
  const upstreamAgent = new Agent({ keepAlive: true, maxSockets: 64 });
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const stats: FaultStats = { requests: 0, forwarded: 0, faults: { slowDown: 0, internalError: 0, resetBefore: 0, resetMidway: 0, delay: 0 } };
  let enabled = true;
  let closed = false;
  let requestSeq = 0;

  function pickFault(): FaultKind | undefined {
    // Always draw both numbers so the sequence does not depend on which branch ran.
    const a = random();
    const b = random();
    if (!enabled || a >= rate) return undefined;
    return kinds[Math.min(kinds.length - 1, Math.floor(b * kinds.length))];
  }

  function later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  }

  function reset(req: IncomingMessage): void {
    req.socket.destroy();
  }

  function answerError(req: IncomingMessage, res: ServerResponse, status: number, code: string, message: string): void {
    const body = s3ErrorXml(code, message, req.url ?? '/', `fault-${++requestSeq}`);
    const send = () => {
      if (res.destroyed) return;
      res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), 'x-amz-request-id': `fault-${requestSeq}` });
      res.end(body);
    };
    // Take the whole request body first, so the client is not cut off while it still sends.
    if (req.readableEnded) send();
    else {
      req.on('end', send);
      req.on('error', () => undefined);
      req.resume();
    }
  }

  function forward(req: IncomingMessage, res: ServerResponse, cutMidway: boolean): void {
    stats.forwarded++;
    const upstream = httpRequest({
      host: target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      headers: forwardableHeaders(req.headers),
      agent: upstreamAgent,
    });
    upstream.on('response', (up) => {
      if (closed) {
        up.destroy();
        return;
      }
      const status = up.statusCode ?? 502;
      const headers = forwardableHeaders(up.headers);
      if (cutMidway) {
        // HEAD answers and 204/304 carry no body whatever their Content-Length says.
        const bodyless = req.method === 'HEAD' || status === 204 || status === 304;
        const length = bodyless ? 0 : Number(up.headers['content-length'] ?? NaN);
        if (!(length > 1)) {
          // No body worth cutting: the server did the work, the client never hears of it.
          up.resume();
          reset(req);
          return;
        }
        const half = Math.floor(length / 2);
        let sent = 0;
        res.writeHead(status, headers);
        up.on('data', (chunk: Buffer) => {
          if (sent >= half) return;
          const part = chunk.subarray(0, half - sent);
          sent += part.length;
          if (sent >= half) {
            up.destroy();
            res.write(part, () => reset(req));
          } else {
            res.write(part);
          }
        });
        up.on('end', () => reset(req)); // shorter than announced: still never complete the response
        up.on('error', () => reset(req));
        return;
      }
      res.writeHead(status, headers);
      up.pipe(res);
      up.on('error', () => reset(req));
    });
    upstream.on('error', () => {
      // The target failed (or the proxy is closing): the client sees a reset, as it would
      // through a real load balancer losing its backend.
      reset(req);
    });
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  }

  const server = createServer((req, res) => {
    stats.requests++;
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    if (closed) {
      reset(req);
      return;
    }
    const fault = pickFault();
    if (fault) stats.faults[fault]++;
    if (options.log) {
      const n = stats.requests;
      const started = Date.now();
      const line = `#${n} ${req.method} ${req.url} ${fault ?? '-'} expect=${req.headers.expect ?? ''} len=${req.headers['content-length'] ?? ''}`;
      options.log(`${line} start`);
      res.on('close', () => options.log?.(`${line} closed ${res.statusCode} finished=${res.writableFinished} ${Date.now() - started}ms`));
    }
    switch (fault) {
      case 'slowDown':
        answerError(req, res, 503, 'SlowDown', 'Please reduce your request rate.');
        return;
      case 'internalError':
        answerError(req, res, 500, 'InternalError', 'We encountered an internal error. Please try again.');
        return;
      case 'resetBefore':
        reset(req);
        return;
      case 'resetMidway':
        forward(req, res, true);
        return;
      case 'delay': {
        const ms = delayMin + Math.floor(random() * Math.max(0, delayMax - delayMin));
        req.pause();
        later(ms, () => {
          if (closed || req.socket.destroyed) reset(req);
          else forward(req, res, false);
        });
        return;
      }
      default:
        forward(req, res, false);
    }
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('clientError', (_err, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      closed = true;
      clearTimeout(lifetime);
      for (const t of timers) clearTimeout(t);
      timers.clear();
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
      upstreamAgent.destroy();
    });
    return closing;
  };
  const lifetime = setTimeout(() => void close(), options.maxLifetimeMs ?? 10 * 60_000);
  lifetime.unref();

  return {
    url: `http://127.0.0.1:${port}`,
    stats: () => ({ ...stats, faults: { ...stats.faults } }),
    setEnabled(on: boolean) {
      enabled = on;
    },
    close,
  };
}
