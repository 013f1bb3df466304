// The rendezvous of a distributed run: rank 0 makes an id (NCCL's unique id) and hands it to every other rank
// over TCP on MASTER_ADDR:MASTER_PORT; NCCL then builds its own transport from the id. Only the id travels here.
//
// Frames: a rank sends "R1RV", its world size and its rank (uint32 big-endian each); rank 0, once all
// worldSize - 1 others have checked in, answers each with a status byte (0: the payload is the id; 1: the
// payload is an error message), the payload's length (uint32) and the payload. Ranks that start before rank 0
// listens retry the connection until the timeout.
import { createServer, connect, type Socket } from 'node:net';
import type { DistributedEnv } from './environment.ts';

export interface RendezvousOptions extends Pick<DistributedEnv, 'rank' | 'worldSize' | 'masterAddr' | 'masterPort'> {
  /** Called on rank 0 only: the bytes to hand out. */
  makeId: () => Uint8Array;
  /** How long to wait for every rank (default 300 s). */
  timeoutMs?: number;
}

const MAGIC = Buffer.from('R1RV');
const HELLO_BYTES = 12;

/** Every rank returns rank 0's id; throws naming what is missing when the ranks do not all meet in time. */
export async function rendezvous(options: RendezvousOptions): Promise<Uint8Array> {
  const { rank, worldSize } = options;
  if (!Number.isInteger(worldSize) || worldSize < 1 || !Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
    throw new Error(`rendezvous: rank ${rank} is not in a world of ${worldSize}`);
  }
  const timeoutMs = options.timeoutMs ?? 300_000;
  return rank === 0 ? serve(options, timeoutMs) : join(options, timeoutMs);
}

function frame(status: number, payload: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(status, 0);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

async function serve(options: RendezvousOptions, timeoutMs: number): Promise<Uint8Array> {
  const { worldSize, masterPort } = options;
  const id = options.makeId();
  if (worldSize === 1) return id;
  const waiting = new Map<number, Socket>();
  const server = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const missing = Array.from({ length: worldSize - 1 }, (_, i) => i + 1).filter((r) => !waiting.has(r));
        const message = `rendezvous on port ${masterPort}: rank(s) ${missing.join(', ')} of ${worldSize} did not check in within ${timeoutMs / 1000} s`;
        for (const s of waiting.values()) s.end(frame(1, Buffer.from(message))); // the ranks that came stop too
        reject(new Error(message));
      }, timeoutMs);
      server.on('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`rendezvous: rank 0 cannot listen on port ${masterPort}: ${err.message} (choose another --master-port)`));
      });
      server.on('connection', (socket) => {
        let hello = Buffer.alloc(0);
        socket.on('error', () => {});
        socket.on('data', (chunk) => {
          hello = Buffer.concat([hello, chunk]);
          if (hello.length < HELLO_BYTES) return;
          const theirWorld = hello.readUInt32BE(4);
          const theirRank = hello.readUInt32BE(8);
          let problem = '';
          if (!hello.subarray(0, 4).equals(MAGIC)) problem = 'not an r1 rendezvous client';
          else if (theirWorld !== worldSize) problem = `rank ${theirRank} has WORLD_SIZE=${theirWorld}, rank 0 has ${worldSize}`;
          else if (theirRank < 1 || theirRank >= worldSize) problem = `rank ${theirRank} is not in a world of ${worldSize}`;
          else if (waiting.has(theirRank)) problem = `rank ${theirRank} checked in twice`;
          if (problem) {
            socket.end(frame(1, Buffer.from(problem)));
            return;
          }
          waiting.set(theirRank, socket);
          if (waiting.size === worldSize - 1) {
            clearTimeout(timer);
            for (const s of waiting.values()) s.end(frame(0, id));
            resolve();
          }
        });
      });
      // All interfaces: on several hosts the others reach rank 0 at MASTER_ADDR, which names one of them.
      server.listen(masterPort);
    });
  } finally {
    server.close();
  }
  return id;
}

async function join(options: RendezvousOptions, timeoutMs: number): Promise<Uint8Array> {
  const { rank, worldSize, masterAddr, masterPort } = options;
  const deadline = Date.now() + timeoutMs;
  const hello = Buffer.alloc(HELLO_BYTES);
  MAGIC.copy(hello, 0);
  hello.writeUInt32BE(worldSize, 4);
  hello.writeUInt32BE(rank, 8);
  let lastError = '';
  while (Date.now() < deadline) {
    const reply = await exchange(masterAddr, masterPort, hello, deadline).catch((err: Error) => {
      lastError = err.message;
      return null;
    });
    if (reply) {
      const status = reply.readUInt8(0);
      const payload = reply.subarray(5, 5 + reply.readUInt32BE(1));
      if (status !== 0) throw new Error(`rendezvous: rank 0 at ${masterAddr}:${masterPort} refused rank ${rank}: ${payload.toString()}`);
      return new Uint8Array(payload);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`rendezvous: rank ${rank} could not get the id from rank 0 at ${masterAddr}:${masterPort} within ${timeoutMs / 1000} s (${lastError})`);
}

/** Sends the hello and reads the whole reply (rank 0 closes after it); rejects when the connection fails. */
function exchange(host: string, port: number, hello: Buffer, deadline: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host, port }, () => socket.write(hello));
    // A second past the deadline: rank 0's own timeout message, sent at the same deadline, is the better error.
    socket.setTimeout(Math.max(1, deadline - Date.now()) + 1000, () => socket.destroy(new Error('timed out waiting for the other ranks')));
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const reply = Buffer.concat(chunks);
      if (reply.length >= 5 && reply.length >= 5 + reply.readUInt32BE(1)) resolve(reply);
      else reject(new Error('rank 0 closed the connection without an answer'));
    });
  });
}
