'use strict';
// Node side of the icpy JavaScript kernel: runs cells in REPL mode, speaks NDJSON on pipes.
//
// fds (numbers passed in ICPY_NODE_FDS): commands from Python (read here, main thread),
// events to Python (every frame, including the cell's stdout/stderr, so order is kept), and
// the interrupt pipe, which the worker in interrupter.js owns.
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const util = require('node:util');
const inspector = require('node:inspector');
const { createRequire } = require('node:module');
const { StringDecoder } = require('node:string_decoder');
const { Worker } = require('node:worker_threads');
const tools = require('./context.js');

const [CMD_FD, EVENT_FD, INTERRUPT_FD] = String(process.env.ICPY_NODE_FDS).split(',').map(Number);
delete process.env.ICPY_NODE_FDS;
const HOOK = Symbol.for('icpy.kernel.hook');
const IMPORT_HELPER = '__icpy_import';
const FLUSH_MS = 20;
const MAX_BATCH = 256 * 1024;

function defineGlobalEarly(name, value) {
  Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
}

// ---- framed output ------------------------------------------------------------------------

function writeFrame(line) {
  const buf = Buffer.from(line, 'utf8');
  for (let off = 0; off < buf.length;) {
    try {
      off += fs.writeSync(EVENT_FD, buf, off);
    } catch (err) {
      if (err.code !== 'EAGAIN') throw err; // a full pipe is back-pressure: just retry
    }
  }
}

let pendingName = null;
let pending = [];
let pendingLen = 0;
let lastFlush = 0;
let flushScheduled = false;

function flushOutput() {
  if (pending.length === 0) return;
  const text = pending.join('');
  pending = [];
  pendingLen = 0;
  lastFlush = Date.now();
  writeFrame(JSON.stringify({ t: 'stream', name: pendingName, text }) + '\n');
}

// Every non-stream frame flushes buffered output first, so Python sees events in JS order.
function emit(frame) {
  flushOutput();
  writeFrame(JSON.stringify(frame) + '\n');
}

// Output is batched for throughput, but the first write after a quiet spell goes out at
// once (so `console.log(1); <long sync work>` shows "1" immediately), and the rest follows
// within FLUSH_MS or at the next turn of the event loop.
function writeStream(name, text) {
  if (!text) return;
  if (pendingName !== name && pending.length) flushOutput();
  pendingName = name;
  pending.push(text);
  pendingLen += text.length;
  if (pendingLen >= MAX_BATCH || Date.now() - lastFlush >= FLUSH_MS) flushOutput();
  else if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(() => { flushScheduled = false; flushOutput(); });
  }
}

// A fresh Console instead of the global one: with an inspector session attached, every
// call on the global console is also reported to the inspector, which makes console.log
// about 10x slower.
const { Console } = require('node:console');
defineGlobalEarly('console', new Console({ stdout: process.stdout, stderr: process.stderr, colorMode: false }));

for (const name of ['stdout', 'stderr']) {
  const decoder = new StringDecoder('utf8');
  // console.* writes through these, so patching write() captures console too.
  process[name].write = function write(chunk, encoding, callback) {
    if (typeof encoding === 'function') [callback, encoding] = [encoding, undefined];
    let text;
    if (typeof chunk === 'string') text = encoding && encoding !== 'utf8' && encoding !== 'utf-8' ? Buffer.from(chunk, encoding).toString() : chunk;
    else text = decoder.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    writeStream(name, text);
    if (callback) process.nextTick(callback);
    return true;
  };
}

// ---- errors -------------------------------------------------------------------------------

// Drop the driver's own frames: everything from the inspector entry point down is ours.
function cleanStack(stack) {
  const out = [];
  for (const line of stack.split('\n')) {
    const frame = /^\s+at /.test(line);
    if (frame && (line.includes('node:inspector') || line.includes(__dirname))) break;
    if (frame && line.includes('node:internal/')) continue;
    out.push(line);
  }
  return out;
}

function describeError(err) {
  if (err !== null && typeof err === 'object' && typeof err.stack === 'string') {
    const ename = String(err.name || (err.constructor && err.constructor.name) || 'Error');
    return { ename, evalue: String(err.message), traceback: cleanStack(err.stack) };
  }
  const evalue = util.inspect(err);
  return { ename: 'Uncaught', evalue, traceback: [`Uncaught ${evalue}`] };
}

// Reachable from code the inspector runs in the user's context (Runtime.callFunctionOn).
Object.defineProperty(globalThis, HOOK, {
  value: { inspect: (v) => util.inspect(v, { colors: false }), error: describeError, describe: tools.describe },
});

const INTERRUPTED = { ename: 'Interrupted', evalue: 'execution interrupted', traceback: ['Interrupted: execution interrupted'] };

// An asynchronous error belongs to the cell whose code raised it, even when that cell has
// finished (the frame then names it; Python sends it under that cell's parent): the
// outermost `cell[N]` frame of its stack says which. Errors without one (a rejection with a
// plain value, a failure inside Node's own I/O) go with the running cell. Tracking every
// promise's cell (V8 promise hooks) made promise-heavy code 10x slower, and Node's
// AsyncLocalStorage makes interrupting a timer callback abort Node.
const recentCells = new Map(); // execution count -> the latest cell run with it
const CELLS_KEPT = 256;

function ownerOf(err) {
  let stack = '';
  try {
    if (err !== null && typeof err === 'object' && typeof err.stack === 'string') stack = err.stack;
  } catch { /* a throwing getter: no stack to go by */ }
  const frames = [...stack.matchAll(/\bcell\[(\d+)\]:\d+:\d+/g)];
  const named = frames.length ? recentCells.get(Number(frames[frames.length - 1][1])) : undefined;
  return named || current;
}

function reportAsync(err, label) {
  const { traceback } = describeError(err);
  const text = `${label} ${traceback.join('\n')}\n`;
  const cell = ownerOf(err);
  if (cell && cell !== current) emit({ t: 'stream', name: 'stderr', text, cell: cell.id });
  else writeStream('stderr', text);
}
process.on('uncaughtException', (err) => reportAsync(err, 'Uncaught'));
process.on('unhandledRejection', (reason) => reportAsync(reason, 'Unhandled promise rejection:'));

// ---- the user's context -------------------------------------------------------------------

const session = new inspector.Session();
session.connect();
// A connected session at exit makes Node print "Waiting for the debugger to disconnect".
process.on('exit', () => session.disconnect());
function post(method, params = {}) {
  return new Promise((resolve, reject) => {
    session.post(method, params, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

let current = null; // the running cell: {id, count, silent, allowStdin, done}
const pendingInputs = new Map();
let inputSeq = 0;

function input(prompt = '', options = {}) {
  const cell = current;
  if (!cell) return Promise.reject(new Error('input() can only be used while a cell is running'));
  if (!cell.allowStdin) {
    return Promise.reject(new Error('input() is not available: this frontend does not accept input (allow_stdin is false)'));
  }
  return new Promise((resolve, reject) => {
    const id = ++inputSeq;
    pendingInputs.set(id, { resolve, reject });
    emit({ t: 'input', id, prompt: String(prompt), password: Boolean(options && options.password) });
  });
}

const defineGlobal = defineGlobalEarly;
const cellRequire = createRequire(path.join(process.cwd(), '[icpy-cell]'));
defineGlobal('require', cellRequire);
defineGlobal(IMPORT_HELPER, tools.makeImporter(process.cwd(), cellRequire));
defineGlobal('display', tools.makeDisplay(emit));
defineGlobal('input', input);

// ---- execution ----------------------------------------------------------------------------

function finish(cell, error) {
  if (cell.done) return;
  cell.done = true;
  if (current === cell) current = null;
  for (const waiter of pendingInputs.values()) waiter.reject(new Error('cell finished'));
  pendingInputs.clear();
  emit({ t: 'done', id: cell.id, ...(error ? { status: 'error', ...error } : { status: 'ok' }) });
}

async function remoteValue(obj, fn) {
  const r = await post('Runtime.callFunctionOn', {
    objectId: obj.objectId,
    functionDeclaration: `function () { 'use strict'; return globalThis[Symbol.for('icpy.kernel.hook')].${fn}(this); }`,
    returnByValue: true,
    silent: true,
  });
  return r.result.value;
}

async function formatResult(obj) {
  if (obj.objectId) return remoteValue(obj, 'inspect');
  if ('unserializableValue' in obj) return obj.unserializableValue;
  return util.inspect(obj.value, { colors: false });
}

async function errorFrom(details, code, count) {
  const ex = details.exception;
  if (!ex) return { ename: 'Error', evalue: details.text, traceback: [details.text] };
  const error = ex.objectId ? await remoteValue(ex, 'error') : describeError(ex.value);
  // Syntax errors carry no stack frame of the cell: point at the line ourselves.
  if (error.ename === 'SyntaxError' && error.traceback.length <= 1) {
    const lines = code.split('\n');
    const line = Math.min(details.lineNumber, lines.length - 1);
    const col = line === details.lineNumber ? details.columnNumber : lines[line].length;
    error.traceback.push(`    at cell[${count}]:${line + 1}:${col + 1}`, lines[line], `${' '.repeat(col)}^`);
  }
  return error;
}

async function execute(msg) {
  const cell = { id: msg.id, count: msg.count, silent: Boolean(msg.silent), allowStdin: Boolean(msg.allow_stdin), done: false };
  current = cell;
  recentCells.delete(cell.count); // re-inserted last: the oldest entry is the first
  recentCells.set(cell.count, cell);
  if (recentCells.size > CELLS_KEPT) recentCells.delete(recentCells.keys().next().value);
  const expression = `${tools.rewriteImports(tools.rewriteStaticImports(msg.code), IMPORT_HELPER)}\n//# sourceURL=cell[${msg.count}]`;
  let res;
  try {
    res = await post('Runtime.evaluate', { expression, replMode: true, awaitPromise: true, objectGroup: 'icpy-cell' });
    // Node reports a rejection nobody handled after the turn that rejected it: let the
    // turns the cell queued (setImmediate, resolved promises) run, so their reports go
    // out before this cell's 'done' rather than in the middle of the next cell.
    await new Promise((resolve) => setImmediate(resolve));
  } catch (err) {
    // Runtime.terminateExecution from the interrupter surfaces here as an inspector error.
    finish(cell, /terminated/i.test(String(err && err.message)) ? INTERRUPTED : describeError(err));
    return;
  }
  if (cell.done) return; // already answered as interrupted
  try {
    if (res.exceptionDetails) {
      finish(cell, await errorFrom(res.exceptionDetails, msg.code, msg.count));
    } else {
      if (!cell.silent && res.result.type !== 'undefined') {
        emit({ t: 'result', id: cell.id, count: cell.count, data: { 'text/plain': await formatResult(res.result) } });
      }
      finish(cell, null);
    }
  } catch (err) {
    finish(cell, describeError(err));
  } finally {
    post('Runtime.releaseObjectGroup', { objectGroup: 'icpy-cell' }).catch(() => {});
  }
}

// ---- commands from Python -----------------------------------------------------------------

async function reply(msg, work) {
  try {
    emit({ t: 'reply', id: msg.id, ok: true, ...(await work()) });
  } catch (err) {
    emit({ t: 'reply', id: msg.id, ok: false, error: String(err && err.message) });
  }
}

function dispatch(msg) {
  switch (msg.t) {
    case 'exec': execute(msg); break;
    case 'complete': reply(msg, () => tools.complete(post, msg.before)); break;
    case 'inspect': reply(msg, async () => ({ text: await tools.inspectAt(post, msg.before, msg.after) })); break;
    case 'is_complete': reply(msg, async () => ({ status: tools.isComplete(msg.code) })); break;
    case 'input_reply': {
      const waiter = pendingInputs.get(msg.id);
      pendingInputs.delete(msg.id);
      if (waiter && msg.error) waiter.reject(new Error(msg.error));
      else if (waiter) waiter.resolve(msg.value);
      break;
    }
    case 'exit': flushOutput(); process.exit(0); break;
    default: emit({ t: 'log', text: `unknown command ${msg.t}` });
  }
}

const commands = new net.Socket({ fd: CMD_FD, readable: true, writable: false });
commands.setEncoding('utf8');
let inbox = '';
commands.on('data', (chunk) => {
  inbox += chunk;
  for (let nl = inbox.indexOf('\n'); nl >= 0; nl = inbox.indexOf('\n')) {
    const line = inbox.slice(0, nl);
    inbox = inbox.slice(nl + 1);
    if (line) dispatch(JSON.parse(line));
  }
});
// The kernel closed the pipe (shutdown, or it died): nothing left to serve.
commands.on('end', () => { flushOutput(); process.exit(0); });
commands.on('error', () => process.exit(0));

// ---- interrupts ---------------------------------------------------------------------------

const ackBuffer = new SharedArrayBuffer(4);
const ack = new Int32Array(ackBuffer);
const interrupter = new Worker(path.join(__dirname, 'interrupter.js'), {
  workerData: { ackBuffer, interruptFd: INTERRUPT_FD },
  stdout: false,
  stderr: false,
  // Each isolate reserves its own JIT code range, 512 MiB of address space by default: under
  // the sandbox's RLIMIT_AS (no memory cgroup) that would cost the user half a GiB, or stop
  // node starting at all. The worker runs a few functions: 16 MiB is plenty.
  resourceLimits: { codeRangeSizeMb: 16 },
});
interrupter.unref();
interrupter.on('error', (err) => reportAsync(err, 'icpy interrupter failed:'));
interrupter.on('message', (msg) => {
  if (msg.t !== 'interrupt') return;
  // Acknowledge first: this proves to the worker that the main thread is idle.
  Atomics.store(ack, 0, msg.seq);
  Atomics.notify(ack, 0);
  if (current) finish(current, INTERRUPTED);
});

emit({ t: 'hello', version: process.versions.node, pid: process.pid });
