import { useEffect, useState } from "preact/hooks";

/**
 * The `<video>`'s current time, followed as it plays and seeks (`timeupdate`, `seeked`), and a
 * setter for a component that seeks it itself (its own state shows the new time at once).
 */
export function usePlaybackTime(video: { current: HTMLVideoElement | null }) {
  const [now, setNow] = useState(0);
  useEffect(() => {
    const element = video.current;
    if (!element) return;
    const follow = () => setNow(element.currentTime);
    element.addEventListener("timeupdate", follow);
    element.addEventListener("seeked", follow);
    return () => {
      element.removeEventListener("timeupdate", follow);
      element.removeEventListener("seeked", follow);
    };
  }, [video.current]);
  return [now, setNow] as const;
}
