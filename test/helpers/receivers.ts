/** Real HTTP receivers for alert deliveries (webhook, Slack, ntfy), started by the tests on loopback. */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** An HTTP receiver on 127.0.0.1:0 that records every request; `answer` picks each status, `hang` never answers. */
export class Receiver {
  readonly received: Received[] = [];
  answer: (n: number) => number = () => 200;
  hang = false;
  private constructor(private readonly server: Server) {}

  static async start(): Promise<Receiver> {
    const r: Receiver = new Receiver(
      createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          r.received.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
          if (r.hang) return; // the socket stays open, the answer never comes
          res.writeHead(r.answer(r.received.length), { 'content-type': 'text/plain' }).end('ok');
        });
      }),
    );
    await new Promise<void>((resolve) => r.server.listen(0, '127.0.0.1', resolve));
    return r;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

