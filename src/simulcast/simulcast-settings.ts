/** What adding, listing and forwarding simulcast targets need: the deployment's settings (src/app/live-services.ts). */
export interface SimulcastSettings {
  /** The key stream keys are sealed with (`simulcastKeyCipher`). */
  cipherKey: Buffer;
  /** LIVE_SIMULCAST_MAX_TARGETS: targets one live stream may have. */
  maxTargets: number;
  /** URL_IMPORT_ALLOW_PRIVATE (tests only): targets may be loopback and private addresses. */
  allowPrivateAddresses: boolean;
}
