// The incident list, live: the server pushes the rendered table (SSE).
(function () {
  var box = document.getElementById("incidents");
  if (!box || !window.EventSource) return;
  var es = new EventSource("/ui/events");
  es.addEventListener("incidents", function (e) { box.innerHTML = e.data; });
})();
