/**
 * Wall-clock time in fractional milliseconds. Deadlines and queue times cross replicas in job
 * payloads, so they need a clock every replica shares (NTP-synced hosts), not a monotonic one.
 */
export const epochNow = (): number => performance.timeOrigin + performance.now();
