// bench/ingest.py's part of each ingest page. No DevTools is attached to the browser (it costs
// every frame a CDP event), so the page talks to the bench over HTTP at ?driver=: it holds its
// main thread in a synchronous XHR while the backlog builds, then reports the drain.
(() => {
  const q = new URLSearchParams(location.search);
  const driver = q.get("driver");
  if (!driver) return;  // opened by hand
  const direct = parseInt(q.get("direct") || "0", 10);
  const post = (path, body) => fetch(driver + path, {method: "POST", body: JSON.stringify(body)}).catch(() => {});
  const waitFor = (test, ms, then) => {
    const t0 = performance.now();
    const poll = () => (test() ? then(true) : performance.now() - t0 > ms ? then(false) : setTimeout(poll, 50));
    poll();
  };
  waitFor(() => window.benchSubscribed > 0 && typeof window.benchCount === "function", 180000, (subscribed) => {
    if (!subscribed) { post("/result", {error: "never subscribed"}); return; }
    try {
      const hold = new XMLHttpRequest();
      hold.open("GET", driver + "/hold", false);  // returns when the bench has filled the backlog
      hold.send();
    } catch (e) { post("/result", {error: "hold: " + e}); return; }
    waitFor(() => window.benchResult, 120000, (drained) => {
      post("/drained", {});
      const out = {result: window.benchResult || null, count: window.benchCount()};
      // later, so the /drained request is on its way before the main thread is busy again
      setTimeout(() => {
        if (drained && direct) {
          out.direct_ms = window.benchDirect(direct);
          if (window.benchFloor) out.floor_ms = window.benchFloor(direct);
        }
        post("/result", out);
      }, 200);
    });
  });
})();
