// A grpc-js client for the interop suite: calls all four methods of the
// Fibonacci service at ADDRESS (default localhost:1337), the guide's calls
// and the int32 edges, and prints one JSON document of what came back.
// The service definition is read at run time from the project's own
// proto/fibonacci.proto.
//
//   node client.js 127.0.0.1:50051
//
// Each call's entry has the final status (`code`, its name, and `details`)
// and what was received: `value` for AtIndex and SumIndicies, `values` for
// GetSequence, and for StreamSequence one `turns` entry per increment sent
// with the values received before the next increment was sent.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO = path.join(__dirname, '..', '..', 'proto', 'fibonacci.proto');

const definition = protoLoader.loadSync(PROTO, {
  keepCase: true,
  longs: Number,
  enums: String,
  // proto3 sends 0 as an absent field; read it back as 0.
  defaults: true,
  oneofs: true,
});
const { Fibonacci } = grpc.loadPackageDefinition(definition).fibonacci;

const CODE_NAMES = Object.fromEntries(
  Object.entries(grpc.status).map(([name, code]) => [code, name]),
);

// Every call is bounded: a hang shows as DEADLINE_EXCEEDED, not a stuck run.
const DEADLINE_MS = 20000;
const deadline = () => new Date(Date.now() + DEADLINE_MS);

function statusOf(status) {
  return { code: CODE_NAMES[status.code], details: status.details };
}

/** Resolves with the call's final status once it has ended. */
function finished(call) {
  return new Promise((resolve) => {
    call.on('error', () => {}); // the status below carries it
    call.on('status', (status) => resolve(statusOf(status)));
  });
}

async function atIndex(client, index) {
  let value = null;
  const call = client.AtIndex({ value: index }, { deadline: deadline() }, (error, reply) => {
    if (!error) value = reply.value;
  });
  const status = await finished(call);
  return { ...status, value };
}

async function getSequence(client, count) {
  const values = [];
  const call = client.GetSequence({ value: count }, { deadline: deadline() });
  call.on('data', (reply) => values.push(reply.value));
  const status = await finished(call);
  return { ...status, values };
}

async function sumIndicies(client, indices) {
  let value = null;
  const call = client.SumIndicies({ deadline: deadline() }, (error, reply) => {
    if (!error) value = reply.value;
  });
  const done = finished(call);
  for (const index of indices) call.write({ value: index });
  call.end();
  const status = await done;
  return { ...status, value };
}

/**
 * StreamSequence as the guide's bidirectional client uses it: send one
 * increment, wait for its numbers, send the next. A turn waits for
 * `increment` values or the end of the call, whichever comes first.
 */
async function streamSequence(client, increments) {
  const call = client.StreamSequence({ deadline: deadline() });
  const received = [];
  let ended = false;
  let wake = () => {};
  call.on('data', (reply) => { received.push(reply.value); wake(); });
  const done = finished(call).then((status) => { ended = true; wake(); return status; });
  const take = async (count) => {
    while (received.length < count && !ended) {
      await new Promise((resolve) => { wake = resolve; });
    }
    return received.splice(0, count);
  };
  const turns = [];
  for (const increment of increments) {
    if (ended) break;
    call.write({ value: increment });
    turns.push({ sent: increment, received: await take(Math.max(increment, 0)) });
  }
  call.end();
  const status = await done;
  return { ...status, turns, after_end: received.splice(0) };
}

async function main() {
  const address = process.argv[2] || 'localhost:1337';
  const client = new Fibonacci(address, grpc.credentials.createInsecure());
  const results = {
    address,
    AtIndex: {
      7: await atIndex(client, 7),
      46: await atIndex(client, 46),
      47: await atIndex(client, 47),
      '-1': await atIndex(client, -1),
    },
    GetSequence: {
      7: await getSequence(client, 7),
      46: await getSequence(client, 46),
      47: await getSequence(client, 47),
    },
    SumIndicies: {
      '7,5': await sumIndicies(client, [7, 5]),
      '': await sumIndicies(client, []),
      '46,46': await sumIndicies(client, [46, 46]),
    },
    StreamSequence: {
      '4,2,1': await streamSequence(client, [4, 2, 1]),
      '44,3': await streamSequence(client, [44, 3]),
    },
  };
  client.close();
  process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
}

main().catch((error) => {
  process.stderr.write(`error: ${error.stack || error}\n`);
  process.exit(1);
});
