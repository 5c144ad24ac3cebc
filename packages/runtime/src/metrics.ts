/**
 * The runtime's metrics, recorded once and exposed twice: Prometheus text at `/metrics`
 * (prom-client) and OTLP through OpenTelemetry when an exporter is configured.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Meter } from '@opentelemetry/api';

/** How an inference request ended. */
export type InferenceOutcome = 'success' | 'client_error' | 'server_error' | 'rejected';

/** Live figures the metrics read when scraped. */
export interface MetricsSources {
  queueDepth(): number;
  inFlight(): number;
  readyVersions(): ReadonlyArray<{ model: string; version: string; ready: boolean }>;
}

const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Metrics of one `aiedge serve` process. */
export class RuntimeMetrics {
  /** Registry behind `/metrics`. */
  readonly registry = new Registry();
  readonly #requests: Counter<'model' | 'version' | 'outcome'>;
  readonly #duration: Histogram<'model' | 'version'>;
  readonly #queueWait: Histogram<'model'>;
  readonly #loads: Histogram<'model' | 'version' | 'outcome'>;
  readonly #otel: {
    requests: ReturnType<Meter['createCounter']>;
    duration: ReturnType<Meter['createHistogram']>;
    loads: ReturnType<Meter['createHistogram']>;
  };

  constructor(meter: Meter, sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#requests = new Counter({
      name: 'aiedge_inference_requests_total',
      help: 'Inference requests by model, version and outcome (success, client_error, server_error, rejected).',
      labelNames: ['model', 'version', 'outcome'],
      registers,
    });
    this.#duration = new Histogram({
      name: 'aiedge_inference_request_duration_seconds',
      help: 'Time from receiving an inference request to having its response, in seconds.',
      labelNames: ['model', 'version'],
      buckets: latencyBuckets,
      registers,
    });
    this.#queueWait = new Histogram({
      name: 'aiedge_inference_queue_wait_seconds',
      help: 'Time an inference request waited for a free worker, in seconds.',
      labelNames: ['model'],
      buckets: latencyBuckets,
      registers,
    });
    this.#loads = new Histogram({
      name: 'aiedge_model_load_duration_seconds',
      help: 'Time to load a model version into every worker, in seconds, by outcome.',
      labelNames: ['model', 'version', 'outcome'],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    new Gauge({
      name: 'aiedge_inference_queue_depth',
      help: 'Inference requests waiting for a worker.',
      registers,
      collect() {
        this.set(sources.queueDepth());
      },
    });
    new Gauge({
      name: 'aiedge_inference_in_flight',
      help: 'Inference requests running in a worker now.',
      registers,
      collect() {
        this.set(sources.inFlight());
      },
    });
    new Gauge({
      name: 'aiedge_model_ready',
      help: '1 when a model version is ready to serve, 0 otherwise.',
      labelNames: ['model', 'version'],
      registers,
      collect() {
        this.reset();
        for (const v of sources.readyVersions())
          this.set({ model: v.model, version: v.version }, v.ready ? 1 : 0);
      },
    });

    this.#otel = {
      requests: meter.createCounter('aiedge.inference.requests', {
        description: 'Inference requests by model, version and outcome.',
      }),
      duration: meter.createHistogram('aiedge.inference.duration', {
        description: 'Inference request duration.',
        unit: 's',
        advice: { explicitBucketBoundaries: latencyBuckets },
      }),
      loads: meter.createHistogram('aiedge.model.load.duration', {
        description: 'Model version load time.',
        unit: 's',
      }),
    };
    meter
      .createObservableGauge('aiedge.inference.queue.depth', {
        description: 'Requests waiting for a worker.',
      })
      .addCallback((r) => r.observe(sources.queueDepth()));
    meter
      .createObservableGauge('aiedge.inference.in_flight', { description: 'Requests running in a worker.' })
      .addCallback((r) => r.observe(sources.inFlight()));
  }

  /** Records one finished inference request. */
  recordInference(
    model: string,
    version: string,
    outcome: InferenceOutcome,
    seconds: number,
    queueSeconds?: number,
  ): void {
    this.#requests.inc({ model, version, outcome });
    const attributes = { 'aiedge.model.name': model, 'aiedge.model.version': version, outcome };
    this.#otel.requests.add(1, attributes);
    if (outcome === 'success') {
      this.#duration.observe({ model, version }, seconds);
      this.#otel.duration.record(seconds, attributes);
    }
    if (queueSeconds !== undefined) this.#queueWait.observe({ model }, queueSeconds);
  }

  /** Records one model version load. */
  recordLoad(model: string, version: string, outcome: 'success' | 'failure', seconds: number): void {
    this.#loads.observe({ model, version, outcome }, seconds);
    this.#otel.loads.record(seconds, {
      'aiedge.model.name': model,
      'aiedge.model.version': version,
      outcome,
    });
  }
}
