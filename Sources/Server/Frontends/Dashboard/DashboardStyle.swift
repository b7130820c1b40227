/// The dashboard's style sheet: system fonts, colours with text beside them (a status is
/// always spelt out), at least 4.5:1 contrast, one column at a phone's width.
enum DashboardStyle {
    static let text = #"""
:root {
  --bg: #ffffff; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --panel: #f6f8fa; --link: #0550ae;
  --ok-bg: #dafbe1; --ok-fg: #116329; --warn-bg: #fff8c5; --warn-fg: #7d4e00;
  --bad-bg: #ffebe9; --bad-fg: #a40e26; --info-bg: #ddf4ff; --info-fg: #0a3069; --focus: #0969da;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --fg: #e6edf3; --muted: #9da7b3; --line: #30363d; --panel: #161b22; --link: #79c0ff;
    --ok-bg: #12361f; --ok-fg: #7ee2a1; --warn-bg: #3a2e05; --warn-fg: #f2cc60;
    --bad-bg: #46161b; --bad-fg: #ffa198; --info-bg: #0c2d6b; --info-fg: #a5d6ff; --focus: #58a6ff;
  }
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--fg); font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
a { color: var(--link); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.92em; overflow-wrap: anywhere; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 8px; top: 8px; background: var(--bg); padding: 4px 8px; z-index: 10; }
.top { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center; padding: 10px 16px; border-bottom: 1px solid var(--line); background: var(--panel); }
.top h1 { font-size: 1.15rem; margin: 0; }
.top h1 a { color: inherit; text-decoration: none; }
.live { margin: 0; padding: 2px 10px; border-radius: 999px; font-weight: 600; font-size: 0.9rem; }
.live-up { background: var(--ok-bg); color: var(--ok-fg); }
.live-down { background: var(--bad-bg); color: var(--bad-fg); }
.live-connecting { background: var(--warn-bg); color: var(--warn-fg); }
.token { display: flex; gap: 6px; align-items: center; margin-left: auto; flex-wrap: wrap; }
input, select, button { font: inherit; color: inherit; background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 5px 8px; min-height: 34px; }
button { cursor: pointer; background: var(--panel); }
input[type=checkbox] { min-height: 0; width: 18px; height: 18px; margin: 0; accent-color: var(--focus); }
[tabindex="-1"]:focus { outline: none; }
button:disabled { cursor: not-allowed; opacity: 0.6; }
button.danger { color: var(--bad-fg); border-color: var(--bad-fg); }
.access { margin: 0; padding: 8px 16px; border-bottom: 1px solid var(--line); }
.access.readonly { background: var(--warn-bg); color: var(--warn-fg); }
.access.writable { background: var(--info-bg); color: var(--info-fg); }
.access.denied { background: var(--bad-bg); color: var(--bad-fg); }
main { padding: 12px 16px 24px; }
main:focus { outline: none; }
h2 { font-size: 1.1rem; margin: 8px 0; }
.filters { display: flex; flex-wrap: wrap; gap: 8px 12px; align-items: end; margin: 8px 0 12px; }
.filters label { display: flex; flex-direction: column; font-size: 0.85rem; color: var(--muted); gap: 2px; }
.filters label.check { flex-direction: row; align-items: center; gap: 6px; color: var(--fg); font-size: 0.95rem; min-height: 34px; }
.summary { color: var(--muted); margin: 4px 0 8px; }
.table-wrap { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--panel); font-weight: 600; font-size: 0.9rem; white-space: nowrap; }
tbody th { background: none; font-size: inherit; white-space: normal; overflow-wrap: anywhere; }
tr:last-child td { border-bottom: none; }
tr.problem td:first-child { box-shadow: inset 4px 0 0 var(--bad-fg); }
.badge { display: inline-block; padding: 0 7px; margin: 1px 3px 1px 0; border-radius: 999px; font-size: 0.82rem; font-weight: 600; white-space: nowrap; border: 1px solid transparent; }
.s-UP, .h-passing { background: var(--ok-bg); color: var(--ok-fg); }
.s-STARTING, .h-warning { background: var(--warn-bg); color: var(--warn-fg); }
.s-DOWN, .h-critical { background: var(--bad-bg); color: var(--bad-fg); }
.s-OUT_OF_SERVICE { background: var(--panel); color: var(--fg); border-color: var(--muted); }
.tag { background: var(--panel); color: var(--fg); border-color: var(--line); font-weight: 500; overflow-wrap: anywhere; white-space: normal; }
.protected { background: var(--info-bg); color: var(--info-fg); }
.muted { color: var(--muted); }
.more { margin-top: 10px; }
.instances { display: grid; gap: 12px; grid-template-columns: repeat(auto-fill, minmax(min(100%, 420px), 1fr)); }
.instance { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; background: var(--bg); }
.instance.problem { border-left: 5px solid var(--bad-fg); }
.instance h3 { font-size: 1rem; margin: 0 0 6px; overflow-wrap: anywhere; }
.instance dl { display: grid; grid-template-columns: max-content 1fr; gap: 3px 12px; margin: 0; }
.instance dt { color: var(--muted); }
.instance dd { margin: 0; overflow-wrap: anywhere; min-width: 0; }
.checks { margin: 4px 0 0; padding-left: 18px; }
.checks pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 2px 0 0; font-size: 0.85rem; background: var(--panel); padding: 4px 6px; border-radius: 4px; }
.actions { display: flex; gap: 8px; flex-wrap: wrap; margin-top: 10px; }
.error { color: var(--bad-fg); }
.cluster { margin: 12px 16px 0; padding: 8px 12px; border: 1px solid var(--line); border-radius: 8px; }
.cluster h2 { margin-top: 0; }
.foot { color: var(--muted); font-size: 0.85rem; padding: 12px 16px; border-top: 1px solid var(--line); }
@media (max-width: 600px) {
  .token { margin-left: 0; width: 100%; }
  .token input { flex: 1; min-width: 0; }
  .filters label { flex: 1 1 45%; }
  .filters input:not([type=checkbox]), .filters select { width: 100%; }
  /* The services table as one block per service, each value with its column's name. */
  #services thead { position: absolute; left: -9999px; }
  #services tr { display: block; padding: 8px 10px; border-bottom: 1px solid var(--line); }
  #services tr:last-child { border-bottom: none; }
  #services tbody th, #services td { display: block; border: none; padding: 2px 0; }
  #services td[data-label]::before { content: attr(data-label) ": "; color: var(--muted); }
  #services td:empty { display: none; }
  #services tr.problem { box-shadow: inset 4px 0 0 var(--bad-fg); }
  #services tr.problem th { box-shadow: none; }
}
"""#
}
