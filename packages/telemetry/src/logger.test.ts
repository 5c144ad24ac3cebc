import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { InputError } from '@aiedge/protocol';
import { createLogger, parseLogLevel, silentLogger, type LogLevel, type Logger } from './logger.js';

/** A logger writing into memory, and the parsed lines written so far. */
function capture(
  component: string,
  level?: LogLevel,
): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => {
    text += chunk.toString('utf8');
  });
  const logger = createLogger({ component, destination: stream, ...(level ? { level } : {}) });
  return {
    logger,
    lines: () =>
      text
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

describe('createLogger', () => {
  it('writes one JSON object per line with level label, ISO time, component, msg and fields', () => {
    const { logger, lines } = capture('runtime');
    logger.info('model loaded', { model: 'mnist', version: 1 });
    logger.warn('slow');
    const [first, second, ...rest] = lines();
    assert.equal(rest.length, 0);
    assert.ok(first && second);
    assert.equal(first['level'], 'info');
    assert.equal(first['component'], 'runtime');
    assert.equal(first['msg'], 'model loaded');
    assert.equal(first['model'], 'mnist');
    assert.equal(first['version'], 1);
    assert.equal(typeof first['time'], 'string');
    assert.equal(new Date(first['time'] as string).toISOString(), first['time']);
    assert.equal(second['level'], 'warn');
    assert.equal(second['msg'], 'slow');
  });

  it('adds child fields to every line and keeps the parent unchanged', () => {
    const { logger, lines } = capture('agent');
    const child = logger.child({ site: 'edge-1' });
    const grandchild = child.child({ deployment: 'mnist' });
    grandchild.info('synced', { revision: 'abc' });
    logger.info('plain');
    const [fromChild, fromParent] = lines();
    assert.deepEqual(
      { ...fromChild, time: undefined },
      {
        level: 'info',
        time: undefined,
        component: 'agent',
        site: 'edge-1',
        deployment: 'mnist',
        revision: 'abc',
        msg: 'synced',
      },
    );
    assert.equal(fromParent?.['site'], undefined);
    assert.equal(child.level, 'info');
  });

  it('serializes fields.err with name, message, code, stack and cause', () => {
    const { logger, lines } = capture('core');
    const cause = new Error('disk full');
    const err = Object.assign(new TypeError('write failed', { cause }), { code: 'ENOSPC' });
    logger.error('cannot save', { err });
    const err0 = lines()[0]?.['err'] as Record<string, unknown>;
    assert.equal(err0['name'], 'TypeError');
    assert.equal(err0['message'], 'write failed');
    assert.equal(err0['code'], 'ENOSPC');
    assert.match(err0['stack'] as string, /TypeError: write failed\n\s+at /);
    assert.equal((err0['cause'] as Record<string, unknown>)['message'], 'disk full');
  });

  it('serializes an ai-edge error with its machine code', () => {
    const { logger, lines } = capture('core');
    logger.error('bad', { err: new InputError('inputs[0] missing') });
    const err0 = lines()[0]?.['err'] as Record<string, unknown>;
    assert.equal(err0['name'], 'InputError');
    assert.equal(err0['code'], 'AIEDGE_ERR_INVALID_INPUT');
  });

  it('redacts secret fields at the top level, one level down and in child bindings', () => {
    const { logger, lines } = capture('cli');
    const fields = {
      token: 't0k3n',
      password: 'pw',
      secret: 's',
      apiKey: 'k',
      accessKey: 'AKIA',
      secretAccessKey: 'sak',
      authorization: 'Bearer top',
      headers: { authorization: 'Bearer x', Authorization: 'Basic y', accept: 'application/json' },
      s3: { accessKey: 'AKIA2', secretAccessKey: 'sak2', bucket: 'models' },
      user: 'alice',
    };
    logger.info('request', fields);
    logger.child({ registry: { password: 'hunter2', host: 'r.example' } }).info('pull');
    const [line, childLine] = lines();
    assert.ok(line && childLine);
    for (const key of [
      'token',
      'password',
      'secret',
      'apiKey',
      'accessKey',
      'secretAccessKey',
      'authorization',
    ]) {
      assert.equal(line[key], '[redacted]', key);
    }
    assert.deepEqual(line['headers'], {
      authorization: '[redacted]',
      Authorization: '[redacted]',
      accept: 'application/json',
    });
    assert.deepEqual(line['s3'], {
      accessKey: '[redacted]',
      secretAccessKey: '[redacted]',
      bucket: 'models',
    });
    assert.equal(line['user'], 'alice');
    assert.deepEqual(childLine['registry'], { password: '[redacted]', host: 'r.example' });
    // The caller's object is left intact.
    assert.equal(fields.headers.authorization, 'Bearer x');
    const raw = JSON.stringify(lines());
    for (const secret of ['t0k3n', 'Bearer x', 'Basic y', 'AKIA2', 'sak2', 'hunter2']) {
      assert.ok(!raw.includes(secret), secret);
    }
  });

  it('writes only lines at or above its level', () => {
    const { logger, lines } = capture('runtime', 'warn');
    assert.equal(logger.level, 'warn');
    logger.debug('d');
    logger.info('i');
    logger.warn('w');
    logger.error('e');
    assert.deepEqual(
      lines().map((line) => line['level']),
      ['warn', 'error'],
    );
  });

  it('writes debug lines at level debug and nothing at silent', () => {
    const debug = capture('x', 'debug');
    debug.logger.debug('d');
    assert.equal(debug.lines()[0]?.['level'], 'debug');
    const silent = capture('x', 'silent');
    silent.logger.error('e');
    assert.equal(silent.lines().length, 0);
  });

  it('rejects an unknown level', () => {
    assert.throws(
      () => createLogger({ component: 'x', level: 'loud' as LogLevel, destination: new PassThrough() }),
      /"loud" is not one of trace, debug, info, warn, error, fatal, silent/,
    );
  });
});

describe('silentLogger', () => {
  it('accepts every call and writes nothing', () => {
    assert.equal(silentLogger.level, 'silent');
    silentLogger.info('x', { a: 1 });
    silentLogger.error('x');
    assert.equal(silentLogger.child({ a: 1 }), silentLogger);
  });
});

describe('parseLogLevel', () => {
  it('parses names case-insensitively and falls back when unset or blank', () => {
    assert.equal(parseLogLevel('debug', 'info'), 'debug');
    assert.equal(parseLogLevel(' WARN ', 'info'), 'warn');
    assert.equal(parseLogLevel(undefined, 'error'), 'error');
    assert.equal(parseLogLevel('', 'fatal'), 'fatal');
  });

  it('throws an InputError naming the bad value and the allowed ones', () => {
    assert.throws(
      () => parseLogLevel('verbose', 'info'),
      (error: unknown) => {
        assert.ok(error instanceof InputError);
        assert.match(error.message, /"verbose"/);
        assert.match(error.message, /trace, debug, info, warn, error, fatal, silent/);
        return true;
      },
    );
  });
});
