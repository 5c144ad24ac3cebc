/** The ai-edge site agent. */
export {
  DEFAULT_TELEMETRY_QUEUE_BYTES,
  startTelemetryRelay,
  type TelemetryRelay,
  type TelemetryRelayOptions,
  type TelemetryRelayStats,
} from './telemetry/index.js';
export {
  TelemetryForwarder,
  timerSleep,
  type Sleep,
  type TelemetryForwarderOptions,
  type TelemetryForwarderStats,
} from './telemetry/forwarder.js';
export {
  DEFAULT_MAX_OTLP_BODY_BYTES,
  DEFAULT_OTLP_HTTP_PORT,
  startOtlpReceiver,
  type OtlpReceiverOptions,
  type OtlpReceiverStats,
  type RunningOtlpReceiver,
} from './telemetry/receiver.js';
