#!/usr/bin/env node
// llhttp's framing decisions, for the differential test (tests/it/llhttp.rs).
//
// Reads one base64 line per case on stdin: the raw bytes a client sends on one connection.
// Prints one JSON line per case:
//   {"messages": [{"method", "url", "framing", "body" (base64)}], "error": code or null,
//    "reason": llhttp's text or null}
// `framing` is "chunked" when the request carried Transfer-Encoding, "length" for
// Content-Length, else "none": llhttp reports no framing kind itself, but it refuses every
// head where that inference would be ambiguous (both fields, or a coding it cannot frame).
//
// It drives Node's own binding of llhttp (`HTTPParser` from `_http_common`, the parser behind
// `http.createServer`), strict as `insecureHTTPParser: false` leaves it (no lenient flags),
// over the whole buffer at once, then `finish()` for the end of the connection. A socket to a
// real server would add Node's server-side checks (Host, timeouts) that are not llhttp's
// framing; the parser alone is deterministic and needs no ports.
'use strict';

const { HTTPParser, methods } = require('_http_common');
const readline = require('node:readline');

function run(bytes) {
  const messages = [];
  let current = null;
  let pendingHeaders = [];
  const parser = new HTTPParser();
  // type, async resource, max header size (0: Node's default, 16 KiB), lenient flags (none).
  parser.initialize(HTTPParser.REQUEST, {}, 0, HTTPParser.kLenientNone);
  parser[HTTPParser.kOnHeaders] = (headers) => {
    // More than 32 fields arrive in several calls.
    pendingHeaders = pendingHeaders.concat(headers);
  };
  parser[HTTPParser.kOnHeadersComplete] = (major, minor, headers, method, url) => {
    const all = pendingHeaders.concat(headers || []);
    pendingHeaders = [];
    const names = all.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase());
    let framing = 'none';
    if (names.includes('transfer-encoding')) framing = 'chunked';
    else if (names.includes('content-length')) framing = 'length';
    current = { method: methods[method], url, framing, body: [] };
    return 0;
  };
  parser[HTTPParser.kOnBody] = (chunk) => {
    if (current) current.body.push(Buffer.from(chunk));
  };
  parser[HTTPParser.kOnMessageComplete] = () => {
    if (!current) return;
    messages.push({
      method: current.method,
      url: current.url,
      framing: current.framing,
      body: Buffer.concat(current.body).toString('base64'),
    });
    current = null;
  };
  let error = null;
  let reason = null;
  let result = parser.execute(bytes);
  if (!(result instanceof Error)) result = parser.finish();
  if (result instanceof Error) {
    error = result.code || 'ERROR';
    reason = result.reason || String(result.message);
  }
  parser.close();
  return { messages, error, reason };
}

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const verdict = run(Buffer.from(line.trim(), 'base64'));
  process.stdout.write(JSON.stringify(verdict) + '\n');
});
