/* django-cronofy-conferencing: "My conferencing" keeps itself up to date while open.
 *
 * Progressive enhancement, no framework: without this script the page works as
 * served (Sync now, Relink, every form). With it, while the tab is visible:
 *
 * - every data-cc-poll milliseconds, and when the tab comes back into view or
 *   the window regains focus, it asks data-cc-live-url for the accounts section
 *   with If-None-Match (one query on the server, 304 while nothing changed) and
 *   swaps a changed [data-cc-accounts] in without a reload, keeping the focus on
 *   the same control (data-cc-focus) and announcing what changed in a polite
 *   live region ("GoTo is working again");
 * - "Last synced ..." keeps counting;
 * - coming back from a Relink tab, it asks the server (data-cc-relink) to sync
 *   that account once, then looks again.
 *
 * A hidden tab makes no request at all.
 */
(function () {
  "use strict";

  var root = document.querySelector("[data-cc-live-url]");
  if (!root || !window.fetch || !window.DOMParser || !document.querySelector("[data-cc-accounts]")) {
    return;
  }
  var url = root.getAttribute("data-cc-live-url");
  var etag = root.getAttribute("data-cc-etag") || "";
  var interval = parseInt(root.getAttribute("data-cc-poll"), 10) || 3000;
  var justNow = root.getAttribute("data-cc-just-now") || "";
  var timer = null;
  var inFlight = null;
  var relinked = {}; // sync URL -> true: accounts whose Relink tab the user opened

  var live = document.createElement("div");
  live.className = "cc-visually-hidden";
  live.setAttribute("aria-live", "polite");
  live.setAttribute("aria-atomic", "true");
  live.setAttribute("data-cc-announcer", "");
  root.appendChild(live);

  function visible() {
    return document.visibilityState === "visible";
  }

  function section() {
    return document.querySelector("[data-cc-accounts]");
  }

  function csrfToken() {
    var field = document.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  function announce(sentences) {
    if (!sentences.length) {
      return;
    }
    // Emptied first: the same words again are still read out.
    live.textContent = "";
    window.setTimeout(function () {
      live.textContent = sentences.join(". ") + ".";
    }, 50);
  }

  function byKey(container, selector, attribute) {
    var found = {};
    var items = container.querySelectorAll(selector);
    for (var i = 0; i < items.length; i++) {
      found[items[i].getAttribute(attribute)] = items[i];
    }
    return found;
  }

  function changes(before, after) {
    var said = [];
    var oldAccounts = byKey(before, "[data-account-id]", "data-account-id");
    var newAccounts = byKey(after, "[data-account-id]", "data-account-id");
    Object.keys(newAccounts).forEach(function (id) {
      var was = oldAccounts[id];
      var now = newAccounts[id];
      if (was && was.getAttribute("data-cc-state") !== now.getAttribute("data-cc-state")) {
        said.push(now.getAttribute("data-cc-now"));
      }
      if (!was || now.getAttribute("data-cc-state") === "reauthorization") {
        return;
      }
      var oldRows = byKey(was, "[data-profile-id]", "data-profile-id");
      var newRows = byKey(now, "[data-profile-id]", "data-profile-id");
      Object.keys(newRows).forEach(function (key) {
        var row = newRows[key];
        var state = row.getAttribute("data-cc-state");
        if (!oldRows[key]) {
          said.push(row.getAttribute("data-cc-added"));
        } else if (oldRows[key].getAttribute("data-cc-state") !== state && state !== "unknown") {
          said.push(row.getAttribute("data-cc-now"));
        }
      });
      Object.keys(oldRows).forEach(function (key) {
        if (!newRows[key] && oldRows[key].hasAttribute("data-provider")) {
          said.push(oldRows[key].getAttribute("data-cc-removed"));
        }
      });
    });
    return said.filter(Boolean);
  }

  function restoreFocus(key, accountId) {
    var container = section();
    var target = key ? container.querySelector('[data-cc-focus="' + key + '"]') : null;
    if (!target && accountId) {
      // The control went away (a Relink once the profile works): its account's heading.
      target = document.getElementById("cc-account-" + accountId);
      if (target) {
        target.setAttribute("tabindex", "-1");
      }
    }
    if (target) {
      target.focus({ preventScroll: true });
    }
  }

  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("[data-cc-accounts]");
    var current = section();
    if (!fresh || !current) {
      return;
    }
    var said = changes(current, fresh);
    var focused = document.activeElement;
    var key = null;
    var accountId = null;
    if (focused && focused !== document.body && current.contains(focused)) {
      key = focused.getAttribute("data-cc-focus");
      var holder = focused.closest("[data-account-id]");
      accountId = holder ? holder.getAttribute("data-account-id") : null;
    }
    current.replaceWith(document.importNode(fresh, true));
    enhance();
    if (key || accountId) {
      restoreFocus(key, accountId);
    }
    announce(said);
  }

  function refresh() {
    if (inFlight) {
      return inFlight;
    }
    var headers = { "X-Requested-With": "XMLHttpRequest" };
    if (etag) {
      headers["If-None-Match"] = etag;
    }
    inFlight = fetch(url, {
      headers: headers,
      credentials: "same-origin",
      cache: "no-store",
      redirect: "manual",
    })
      .then(function (response) {
        if (response.status !== 200) {
          return null; // 304: nothing changed; anything else: try again later
        }
        var tag = response.headers.get("ETag");
        return response.text().then(function (html) {
          swap(html);
          if (tag) {
            etag = tag;
          }
        });
      })
      .catch(function () {
        return null; // offline for a moment: the next poll tries again
      })
      .then(function () {
        inFlight = null;
      });
    return inFlight;
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = null;
    if (visible()) {
      timer = window.setTimeout(tick, interval);
    }
  }

  function tick() {
    refresh().then(schedule);
  }

  function syncRelinked() {
    var urls = Object.keys(relinked);
    relinked = {};
    if (!urls.length) {
      return Promise.resolve();
    }
    return Promise.all(
      urls.map(function (target) {
        return fetch(target, {
          method: "POST",
          headers: { "X-CSRFToken": csrfToken(), "X-Requested-With": "XMLHttpRequest" },
          credentials: "same-origin",
          cache: "no-store",
          redirect: "manual",
        }).catch(function () {
          return null;
        });
      })
    );
  }

  function backInView() {
    if (!visible()) {
      return;
    }
    window.clearTimeout(timer);
    timer = null;
    syncRelinked()
      .then(refresh)
      .then(schedule);
  }

  var format = null;
  try {
    format = new Intl.RelativeTimeFormat(document.documentElement.lang || undefined, {
      numeric: "auto",
    });
  } catch (error) {
    format = null;
  }

  function ago(seconds) {
    if (seconds < 60 || !format) {
      return justNow;
    }
    var steps = [
      [60, "minute"],
      [3600, "hour"],
      [86400, "day"],
    ];
    var unit = steps[0];
    for (var i = 0; i < steps.length; i++) {
      if (seconds >= steps[i][0]) {
        unit = steps[i];
      }
    }
    return format.format(-Math.floor(seconds / unit[0]), unit[1]);
  }

  function countTimes() {
    var times = document.querySelectorAll("[data-cc-accounts] time[data-cc-ago]");
    for (var i = 0; i < times.length; i++) {
      var moment = Date.parse(times[i].getAttribute("datetime"));
      if (isNaN(moment)) {
        continue;
      }
      var text = ago(Math.max(0, (Date.now() - moment) / 1000));
      if (text && times[i].textContent !== text) {
        times[i].textContent = text;
      }
    }
  }

  function enhance() {
    // The hint under a Relink link: no need to come back and choose Sync now.
    var hints = document.querySelectorAll("[data-cc-accounts] [data-cc-live-text]");
    for (var i = 0; i < hints.length; i++) {
      hints[i].textContent = hints[i].getAttribute("data-cc-live-text");
    }
    countTimes();
  }

  function opened(event) {
    var link = event.target.closest ? event.target.closest("a[data-cc-relink]") : null;
    if (link && section() && section().contains(link)) {
      relinked[link.getAttribute("data-cc-relink")] = true;
    }
  }
  document.addEventListener("click", opened);
  document.addEventListener("auxclick", opened); // a middle click opens the tab too
  document.addEventListener("visibilitychange", function () {
    if (visible()) {
      backInView();
    } else {
      window.clearTimeout(timer);
      timer = null;
    }
  });
  window.addEventListener("focus", backInView);
  window.setInterval(function () {
    if (visible()) {
      countTimes();
    }
  }, 15000);

  enhance();
  schedule();
})();
