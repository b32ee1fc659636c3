'use strict';
// Worker thread of the icpy Node driver: owns the interrupt pipe and stops the main thread.
//
// The main thread cannot read anything while user code spins, so this worker reads the
// interrupt fd itself. It first asks the main thread politely (postMessage); an idle main
// thread acknowledges through shared memory within microseconds. Only if no ack arrives is
// the main thread really busy, and only then is Runtime.terminateExecution sent: V8 applies
// a termination request to whatever JS runs next, so terminating an idle thread would kill
// some unrelated later callback instead.
const inspector = require('node:inspector');
const net = require('node:net');
const { parentPort, workerData } = require('node:worker_threads');

const ack = new Int32Array(workerData.ackBuffer);

const ACK_WAIT_MS = 60;
const MAX_ROUNDS = 20;
let seq = 0;
let busy = false;

function waitForAck(wanted) {
  const deadline = Date.now() + ACK_WAIT_MS;
  for (let seen = Atomics.load(ack, 0); seen < wanted; seen = Atomics.load(ack, 0)) {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    Atomics.wait(ack, 0, seen, left);
  }
  return true;
}

function interrupt() {
  // Interrupts arriving while one is being handled coalesce into it.
  if (busy) return;
  busy = true;
  // Connected only while needed: a session still attached when the process exits makes
  // Node print "Waiting for the debugger to disconnect..." and wait.
  const session = new inspector.Session();
  session.connectToMainThread();
  for (let round = 0; round < MAX_ROUNDS; round++) {
    seq += 1;
    parentPort.postMessage({ t: 'interrupt', seq });
    if (waitForAck(seq)) break;
    // No ack: the main thread is running JS (a sync loop in the cell or in a callback).
    session.post('Runtime.terminateExecution');
  }
  session.disconnect();
  busy = false;
}

const pipe = new net.Socket({ fd: workerData.interruptFd, readable: true, writable: false });
pipe.on('data', () => interrupt());
// EOF means the Python kernel is gone (even if it was SIGKILLed). The main thread may be
// spinning and unable to notice, so take the whole process down from here.
pipe.on('end', () => process.kill(process.pid, 'SIGKILL'));
pipe.on('error', () => process.kill(process.pid, 'SIGKILL'));
