'use strict';
// Helpers the icpy Node driver installs in, or runs against, the user's global context.
const path = require('node:path');
const util = require('node:util');
const vm = require('node:vm');
const { isBuiltin } = require('node:module');
const { pathToFileURL } = require('node:url');
const { randomUUID } = require('node:crypto');

const IDENT = /^[A-Za-z_$][\w$]*$/;
const KEYWORDS = (
  'await break case catch class const continue debugger default delete do else export extends ' +
  'false finally for function if import in instanceof let new null return static super switch ' +
  'this throw true try typeof undefined var void while with yield async of'
).split(' ');

// Scripts run through Runtime.evaluate have no dynamic-import callback in Node 20
// (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING), so `import(` in a cell is redirected to a helper
// defined in this module, which does have one. The scan skips strings, comments and
// template text so that only real `import(` calls are rewritten.
function rewriteImports(code, helperName) {
  if (!code.includes('import')) return code;
  let out = '';
  let last = 0;
  const braces = []; // per open `${`: brace depth inside it, to find the template's resumption
  let i = 0;
  const n = code.length;
  const skipString = (quote) => {
    for (i++; i < n && code[i] !== quote && code[i] !== '\n'; i++) if (code[i] === '\\') i++;
    i++;
  };
  const skipTemplate = () => { // from just after ` or } to after the closing ` or ${
    for (; i < n; i++) {
      if (code[i] === '\\') { i++; continue; }
      if (code[i] === '`') { i++; return; }
      if (code[i] === '$' && code[i + 1] === '{') { i += 2; braces.push(0); return; }
    }
  };
  while (i < n) {
    const c = code[i];
    if (c === '"' || c === "'") skipString(c);
    else if (c === '`') { i++; skipTemplate(); }
    else if (c === '/' && code[i + 1] === '/') { while (i < n && code[i] !== '\n') i++; }
    else if (c === '/' && code[i + 1] === '*') { const end = code.indexOf('*/', i + 2); i = end < 0 ? n : end + 2; }
    else if (c === '{') { if (braces.length) braces[braces.length - 1]++; i++; }
    else if (c === '}') {
      i++;
      if (braces.length && braces[braces.length - 1]-- === 0) { braces.pop(); skipTemplate(); }
    } else if (c === 'i' && code.startsWith('import', i) && !/[\w$.]/.test(code[i - 1] || '')) {
      const m = /^import\s*\(/.exec(code.slice(i, i + 40));
      if (m) { out += code.slice(last, i) + helperName + '('; i += m[0].length; last = i; } else i += 6;
    } else i++;
  }
  return out + code.slice(last);
}

// Static imports are not allowed in scripts, so a cell's line-leading `import ... from 'm'`
// becomes a destructuring `const` over an awaited dynamic import (which rewriteImports then
// routes through the helper); REPL mode lets such a cell be run again.
const STATIC_IMPORT = /^([ \t]*)import\s+(?:([\w$]+)\s*,?\s*)?(?:\*\s*as\s+([\w$]+)|\{([^}]*)\})?\s*from\s*(['"][^'"\n]+['"])[ \t]*;?/gm;
const BARE_IMPORT = /^([ \t]*)import\s*(['"][^'"\n]+['"])[ \t]*;?/gm;

function rewriteStaticImports(code) {
  if (!/^\s*import\b/m.test(code)) return code;
  return code
    .replace(STATIC_IMPORT, (all, indent, def, ns, named, spec) => {
      const load = `await import(${spec})`;
      if (ns) return `${indent}const ${ns} = ${load};${def ? ` const ${def} = ${ns}.default;` : ''}`;
      const parts = named ? named.split(',').map((p) => p.trim()).filter(Boolean).map((p) => p.replace(/\s+as\s+/, ': ')) : [];
      if (def) parts.unshift(`default: ${def}`);
      return parts.length ? `${indent}const { ${parts.join(', ')} } = ${load};` : all;
    })
    .replace(BARE_IMPORT, (all, indent, spec) => `${indent}await import(${spec});`);
}

// import() for cells, resolving relative paths and installed packages against the kernel's
// cwd (a plain import() here would resolve against this file's directory).
function makeImporter(cwd, req) {
  return function importFromCell(specifier, options) {
    const spec = String(specifier);
    let target = spec;
    if (/^\.{0,2}\//.test(spec)) target = pathToFileURL(path.resolve(cwd, spec)).href;
    else if (!spec.includes(':') && !isBuiltin(spec)) {
      try { target = pathToFileURL(req.resolve(spec)).href; } catch { /* let import() report it */ }
    }
    return options === undefined ? import(target) : import(target, options);
  };
}

// display(obj, mimeBundle, options) and shortcuts; `emit` sends a frame to the kernel.
// options.display_id (a string, or true for a fresh one) makes the output updatable, as
// IPython's display(..., display_id=...) does: the call returns a handle whose update()
// replaces that output in place (update_display_data), and display.update(id, ...) does the
// same by id. Without a display_id nothing is returned, as before.
function makeDisplay(emit) {
  const send = (data, options) => {
    const opts = options && typeof options === 'object' ? options : {};
    const metadata = opts.metadata && typeof opts.metadata === 'object' ? opts.metadata : {};
    if (opts.display_id === undefined || opts.display_id === null || opts.display_id === false) {
      if (opts.update) throw new TypeError('display: update needs a display_id');
      emit({ t: 'display', data, metadata });
      return undefined;
    }
    const id = opts.display_id === true ? randomUUID() : String(opts.display_id);
    emit({ t: 'display', data, metadata, display_id: id, update: !!opts.update });
    return handle(id);
  };
  const bundleOf = (obj, bundle) => {
    const data = bundle && typeof bundle === 'object' ? { ...bundle } : {};
    if (!('text/plain' in data)) {
      data['text/plain'] = obj === undefined && bundle ? `<${Object.keys(data).join(', ')}>` : util.inspect(obj);
    }
    return data;
  };
  const handle = (id) => Object.freeze({
    display_id: id,
    display: (obj, bundle) => send(bundleOf(obj, bundle), { display_id: id }),
    update: (obj, bundle) => send(bundleOf(obj, bundle), { display_id: id, update: true }),
  });
  const b64 = (img, mime) => (typeof img === 'string'
    ? img.replace(new RegExp(`^data:${mime};base64,`), '') : Buffer.from(img).toString('base64'));
  function display(obj, bundle, options) {
    return send(bundleOf(obj, bundle), options);
  }
  display.text = (s, options) => send({ 'text/plain': String(s) }, options);
  display.html = (s, options) => send({ 'text/html': String(s), 'text/plain': String(s) }, options);
  display.markdown = (s, options) => send({ 'text/markdown': String(s), 'text/plain': String(s) }, options);
  display.svg = (s, options) => send({ 'image/svg+xml': String(s), 'text/plain': '<SVG image>' }, options);
  display.png = (img, options) => send({ 'image/png': b64(img, 'image/png'), 'text/plain': '<PNG image>' }, options);
  display.jpeg = (img, options) => send({ 'image/jpeg': b64(img, 'image/jpeg'), 'text/plain': '<JPEG image>' }, options);
  display.json = (obj, options) => send(
    { 'application/json': JSON.parse(JSON.stringify(obj ?? null)), 'text/plain': util.inspect(obj) }, options);
  display.update = (id, obj, bundle) => send(bundleOf(obj, bundle), { display_id: String(id), update: true });
  display.clear = (wait = false) => emit({ t: 'clear', wait: !!wait });
  return display;
}

// Names of every property along the prototype chain: the completion candidates for `obj.`.
// Runs under throwOnSideEffect, so only side-effect-free built-ins may be used here.
const PROPS_FN = `(o) => { const names = new Set(); for (let p = Object(o); p != null; p = Object.getPrototypeOf(p)) for (const n of Object.getOwnPropertyNames(p)) names.add(n); return [...names]; }`;

async function complete(post, before) {
  const m = /(?:([A-Za-z_$][\w$]*(?:\s*\.\s*[A-Za-z_$][\w$]*)*)\s*\.\s*)?([A-Za-z_$][\w$]*)?$/.exec(before);
  const token = m ? m[0] : '';
  const prev = before[before.length - token.length - 1] || '';
  if (!token || /[\w$.)\]'"`]/.test(prev)) return { token: '', matches: [] };
  const chain = m[1] ? m[1].replace(/\s+/g, '') : '';
  const prefix = m[2] || '';
  let names = [];
  if (chain) {
    const r = await post('Runtime.evaluate', { expression: `(${PROPS_FN})(${chain})`, throwOnSideEffect: true, returnByValue: true, silent: true });
    if (!r.exceptionDetails && Array.isArray(r.result.value)) names = r.result.value;
  } else {
    const lexical = await post('Runtime.globalLexicalScopeNames', {});
    const r = await post('Runtime.evaluate', { expression: `(${PROPS_FN})(globalThis)`, returnByValue: true, silent: true });
    names = [...lexical.names, ...(r.result.value || []), ...KEYWORDS];
  }
  const matches = [...new Set(names)]
    .filter((n) => IDENT.test(n) && n.startsWith(prefix) && !n.startsWith('__icpy'))
    .sort()
    .map((n) => (chain ? `${chain}.${n}` : n));
  return { token, matches };
}

// A short description of the value named at the cursor: type, function signature, inspect().
async function inspectAt(post, before, after) {
  const left = /[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*\.?$/.exec(before);
  const right = /^[\w$]*/.exec(after)[0];
  const expr = ((left ? left[0] : '') + right).replace(/\.$/, '');
  if (!expr || !/^[A-Za-z_$]/.test(expr)) return null;
  const r = await post('Runtime.evaluate', {
    expression: `(() => { const v = (${expr}); return [v]; })()`, throwOnSideEffect: true, silent: true, objectGroup: 'icpy-inspect',
  });
  if (r.exceptionDetails) return null;
  const described = await post('Runtime.callFunctionOn', {
    objectId: r.result.objectId,
    functionDeclaration: `function (name) { return globalThis[Symbol.for('icpy.kernel.hook')].describe(this[0], name); }`,
    arguments: [{ value: expr }], returnByValue: true, silent: true,
  });
  await post('Runtime.releaseObjectGroup', { objectGroup: 'icpy-inspect' });
  return described.result.value;
}

function describe(value, name) {
  const lines = [`${name}: ${value === null ? 'null' : typeof value}`];
  if (typeof value === 'function') {
    const src = Function.prototype.toString.call(value);
    const head = src.slice(0, src.indexOf('{') > 0 ? src.indexOf('{') : 200).trim();
    lines.push(`signature: ${head || src.split('\n')[0]}`);
  }
  lines.push('', util.inspect(value, { depth: 1, colors: false }));
  return lines.join('\n');
}

const INCOMPLETE = /Unexpected end of input|Unterminated template literal/;

function syntaxError(code) {
  try { new vm.Script(code, { filename: 'cell' }); return null; } catch (e) { return e; }
}

// "complete" if the cell compiles as a script or as an async body (top-level await).
function isComplete(code) {
  if (!code.trim()) return 'complete';
  const asScript = syntaxError(code);
  if (!asScript) return 'complete';
  const asAsync = syntaxError(`(async () => {\n${code}\n})`);
  if (!asAsync) return 'complete';
  if (INCOMPLETE.test(asScript.message) || INCOMPLETE.test(asAsync.message)) return 'incomplete';
  if (code.lastIndexOf('/*') > code.lastIndexOf('*/')) return 'incomplete';
  return 'invalid';
}

module.exports = { rewriteStaticImports, rewriteImports, makeImporter, makeDisplay, complete, inspectAt, describe, isComplete };
