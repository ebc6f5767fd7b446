/**
 * A transcode's encoder figures as `job.progress` and `VariantProgressEvent` carry them: fps to a
 * tenth, speed to a hundredth, the ETA in whole seconds (null: not known). The worker rounds a run's
 * figures so, and the API a split transcode's sums of them.
 */
export function roundedEncoderFigures(figures: {
  fps: number | null;
  speed: number | null;
  etaSeconds: number | null;
}): { fps: number | null; speed: number | null; etaSeconds: number | null } {
  const { fps, speed, etaSeconds } = figures;
  return {
    fps: fps === null ? null : Math.round(fps * 10) / 10,
    speed: speed === null ? null : Math.round(speed * 100) / 100,
    etaSeconds: etaSeconds === null ? null : Math.round(etaSeconds),
  };
}
