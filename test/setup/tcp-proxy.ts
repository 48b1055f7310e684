/**
 * A TCP proxy on 127.0.0.1 between the app and its database, to simulate outages: cut() resets
 * every open connection and stops listening (new connections are refused, as when Postgres is
 * down); partition() keeps every connection open and accepts new ones but forwards nothing either
 * way (a network partition, or a database that hangs); restore() forwards again on the same port,
 * delivering what a partition held back.
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Connections accepted since the proxy started. */
  readonly accepted: number;
  /** Connections open right now (client side). */
  readonly open: number;
  /** Resets every open connection and refuses new ones until restore(). */
  cut(): Promise<void>;
  /** Forwards nothing (connections stay open, new ones are accepted) until restore(). */
  partition(): void;
  /** Accepts and forwards again, on the same port. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let accepted = 0;
  let partitioned = false;

  const forward = ([client, upstream]: [Socket, Socket]) => {
    client.pipe(upstream);
    upstream.pipe(client);
  };
  const hold = ([client, upstream]: [Socket, Socket]) => {
    client.unpipe(upstream);
    upstream.unpipe(client);
    client.pause();
    upstream.pause();
  };

  const onConnection = (client: Socket) => {
    accepted++;
    const upstream = connect({ host: target.host, port: target.port });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    if (partitioned) hold(pair);
    else forward(pair);
  };

  const listen = (port: number) =>
    new Promise<Server>((resolve, reject) => {
      const s = createServer(onConnection);
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        s.off('error', reject);
        resolve(s);
      });
    });
  const stopListening = (s: Server | undefined) => new Promise<void>((resolve) => (s ? s.close(() => resolve()) : resolve()));

  let server: Server | undefined = await listen(0);
  const port = (server.address() as AddressInfo).port;

  const resetAll = () => {
    for (const [client, upstream] of pairs) {
      // A socket already shutting down (its peer half-closed it) cannot be reset: node then
      // never releases it and the test file never exits. Such a socket is simply destroyed.
      if (client.destroyed || client.writableEnded || client.readableEnded) client.destroy();
      else {
        try {
          client.resetAndDestroy();
        } catch {
          client.destroy();
        }
      }
      upstream.destroy();
    }
    pairs.clear();
  };

  return {
    port,
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    async cut() {
      const s = server;
      server = undefined;
      const closed = stopListening(s);
      resetAll();
      await closed;
    },
    partition() {
      partitioned = true;
      pairs.forEach(hold);
    },
    async restore() {
      if (partitioned) {
        partitioned = false;
        pairs.forEach(forward);
      }
      if (!server) server = await listen(port);
    },
    async close() {
      const s = server;
      server = undefined;
      const closed = stopListening(s);
      resetAll();
      await closed;
    },
  };
}
