// Polling: run fn now and every `ms` after it finishes (never two at once), slower while
// the tab is hidden, until stop().

export function poll(fn, ms) {
  let stopped = false;
  let running = false;
  let again = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    if (running) {
      again = true; // asked for fresh data while a request is out: fetch once more after it
      return;
    }
    clearTimeout(timer);
    running = true;
    try {
      await fn();
    } catch (err) {
      console.debug("poll", err); // fn shows its own errors; keep polling
    } finally {
      running = false;
      if (!stopped) {
        if (again) {
          again = false;
          tick();
        } else {
          timer = setTimeout(tick, document.hidden ? ms * 5 : ms);
        }
      }
    }
  };
  tick();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
    refresh: tick,
  };
}
