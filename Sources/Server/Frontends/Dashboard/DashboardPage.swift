/// The dashboard's one page: a frame the script fills. `{{script}}` and `{{style}}` become
/// the assets' digest-named paths when the server starts.
enum DashboardPage {
    static let text = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Service registry</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{{style}}">
<script src="{{script}}" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <h1><a href="#/">Service registry</a></h1>
  <p id="live" class="live live-connecting" role="status" aria-live="polite">Connecting…</p>
  <form id="token-form" class="token" autocomplete="off">
    <label for="token">Token</label>
    <input id="token" name="token" type="password" autocomplete="off" spellcheck="false" placeholder="none: anonymous">
    <button type="submit">Use</button>
    <button type="button" id="token-forget">Forget</button>
  </form>
</header>
<p id="access" class="access" role="note"></p>
<section id="cluster" class="cluster" hidden aria-labelledby="cluster-title">
  <h2 id="cluster-title">Cluster</h2>
  <div id="cluster-body"></div>
</section>
<main id="main" tabindex="-1">
  <noscript><p>The dashboard needs JavaScript; the API works without it (see the README).</p></noscript>
</main>
<footer class="foot">Live from this registry's <code>/watch</code> streams. The API: <code>/services</code>, <code>/discover/{service}</code>, <code>/watch</code>.</footer>
</body>
</html>
"""#
}
