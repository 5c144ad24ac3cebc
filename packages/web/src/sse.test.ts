import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SseParser } from './sse.js';

test('events are dispatched at blank lines, across chunk boundaries and line-ending styles', () => {
  const parser = new SseParser();
  assert.deepEqual(parser.push('retry: 2000\n\nevent: status\ndata: {"a"'), []);
  assert.equal(parser.retryMs, 2000);
  assert.deepEqual(parser.push(':1}\n\nid: 7\r\nevent: log\r\ndata: one\r'), [
    { event: 'status', data: '{"a":1}', id: undefined },
  ]);
  // The \r above may start a \r\n: nothing is dispatched until the next chunk says.
  assert.deepEqual(parser.push('\n\r\n'), [{ event: 'log', data: 'one', id: '7' }]);
  assert.equal(parser.lastEventId, '7');
});

test('comments are skipped, data lines join with newlines, the id carries over, no name means message', () => {
  const parser = new SseParser();
  const events = parser.push(
    ': heartbeat\n\ndata:first\ndata: second\n\nid: 9\ndata: x\n\ndata: y\n\nevent: end\n\n',
  );
  assert.deepEqual(events, [
    { event: 'message', data: 'first\nsecond', id: undefined },
    { event: 'message', data: 'x', id: '9' },
    { event: 'message', data: 'y', id: '9' },
  ]);
  assert.deepEqual(parser.push('retry: soon\nevent: end\ndata\n\n'), [{ event: 'end', data: '', id: '9' }]);
  assert.equal(parser.retryMs, undefined);
});
