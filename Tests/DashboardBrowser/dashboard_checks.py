"""The dashboard (/ui) in a real headless browser: Debian's chromium and chromium-driver,
driven by Selenium (PyPI, in .build/browser-tests), against the real service-registry binary,
which this script starts, stops and restarts itself (the stream must survive a restart).
Registrations are made with curl, as a person would. Run by
Tests/ServerTests/LiveDashboardTests.swift:

    python dashboard_checks.py REGISTRY_BINARY WORK_DIR SCREENSHOT_DIR

Prints `ok: …` per check (with the times it measured) and `done` at the end; exits non-zero
at the first check that fails, with the registry's log.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

binary, work, shots = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(shots, exist_ok=True)
OPS_TOKEN = "ops-token-0123456789abcdef"
READER_TOKEN = "reader-token-0123456789abcdef"


class Registry:
    """The real binary on 127.0.0.1, its log in a file; `port` once it said it."""

    def __init__(self, name, arguments, port=0):
        self.log_path = os.path.join(work, name + ".log")
        self.arguments = arguments
        self.start(port)

    def start(self, port):
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", str(port), "--shutdown-grace", "0"] + self.arguments,
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            text = open(self.log_path, encoding="utf-8", errors="replace").read()
            marker = text.rfind("Service Registry starting on port ")
            if marker >= 0 and (port == 0 or text[marker:].startswith(f"Service Registry starting on port {port}")):
                self.port = int(text[marker:].split("port ", 1)[1].split()[0].rstrip(".…"))
                self.url = f"http://127.0.0.1:{self.port}"
                secure = text.rfind("HTTPS on port ")
                if secure > marker:
                    self.tls_url = f"https://127.0.0.1:{int(text[secure:].split('port ', 1)[1].split()[0])}"
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        fail(f"the registry did not start: {self.text()[-2000:]}")

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(10)
        self.log.close()

    def text(self):
        return open(self.log_path, encoding="utf-8", errors="replace").read()


registries = []


def fail(message):
    print("FAILED:", message, flush=True)
    for registry in registries:
        print(f"--- {registry.log_path} ---\n{registry.text()[-3000:]}", flush=True)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def curl(registry, path, body=None, token=None):
    """curl, as a person would: the answer's JSON and its status."""
    command = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", registry.url + path]
    if body is not None:
        command += ["-X", "POST", "-d", json.dumps(body)]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    text, status = output.rsplit("\n", 1)
    return (json.loads(text) if text else None), int(status)


def register(registry, body, token=None):
    answer, status = curl(registry, "/register", body, token)
    check(status in (200, 201), f"register {body}: {status} {answer}")


def wait_until(predicate, seconds, what):
    started = time.time()
    while time.time() - started < seconds:
        try:
            if predicate():
                return time.time() - started
        except Exception:  # an element replaced while read: try again
            pass
        time.sleep(0.01)
    fail(f"{what}: not within {seconds} s")


def browser(width, trust_any_certificate=False):
    options = webdriver.ChromeOptions()
    if trust_any_certificate:
        # The test's own CA (scripts/make-certs.sh) is not in the browser's store.
        options.add_argument("--ignore-certificate-errors")
    options.binary_location = "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},900", "--hide-scrollbars", "--force-device-scale-factor=1"]:
        options.add_argument(argument)
    # The DevTools network events: every request the page sends, streams included (the
    # Resource Timing API lists a fetch only once its response has ended).
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_window_size(width, 900)
    return driver


def rows(driver):
    """The services table as the page shows it."""
    return driver.execute_script("""
        return [...document.querySelectorAll('#services-body tr')].map((row) => ({
          name: row.dataset.service,
          cells: [...row.children].map((cell) => cell.textContent),
          badges: [...row.children].map((cell) => [...cell.querySelectorAll('.badge')].map((b) => b.textContent)),
        }));""")


def cards(driver):
    """A service's instances as the page shows them: each card's fields by label."""
    return driver.execute_script("""
        return [...document.querySelectorAll('#instances article')].map((card) => {
          const fields = {};
          const terms = [...card.querySelectorAll('dt')];
          for (const term of terms) {
            const value = term.nextElementSibling;
            fields[term.textContent] = { text: value.textContent, badges: [...value.querySelectorAll('.badge')].map((b) => b.textContent) };
          }
          const buttons = [...card.querySelectorAll('button')].map((b) => ({ key: b.dataset.key, disabled: b.disabled }));
          return { id: card.dataset.instance, fields, buttons };
        });""")


sent = {}


def requested(driver):
    """Every request the page has sent so far: (URL, headers)."""
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            request = message["params"]["request"]
            sent.setdefault(id(driver), []).append((request["url"], request.get("headers", {})))
    return sent.get(id(driver), [])


def severe_logs(driver):
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def table_matches_services(driver, registry, path="/services"):
    listing, _ = curl(registry, path)
    shown = rows(driver)
    if [row["name"] for row in shown] != sorted(listing["services"]):
        return False
    for row in shown:
        entry = listing["services"][row["name"]]
        statuses = [f"{status} {count}" for status, count in entry["instances_by_status"].items()]
        healths = [f"{health} {count}" for health, count in entry["instances_by_health"].items()]
        if (row["cells"][1] != str(entry["total_instances"]) or sorted(row["badges"][2]) != sorted(statuses)
                or sorted(row["badges"][3]) != sorted(healths) or row["badges"][4] != entry["tags"]
                or row["cells"][5] != ", ".join(entry["zones"]) or row["cells"][6] != str(entry["index"])):
            return False
    return True


def cards_match_discover(driver, registry, service):
    answer, _ = curl(registry, f"/discover/{service}?status=any")
    shown = cards(driver)
    if [card["id"] for card in shown] != [instance["id"] for instance in answer["instances"]]:
        return False
    for card, instance in zip(shown, answer["instances"]):
        fields = card["fields"]
        if (fields["Address"]["text"] != instance["address"] or fields["Status"]["badges"][0] != instance["status"]
                or fields["Health"]["text"] != instance["health"] or fields["Weight"]["text"] != str(instance["weight"])
                or fields["Zone"]["text"] != (instance["zone"] or "none")
                or fields["Tags"]["badges"] != instance["tags"]
                or ("protected" in fields["Status"]["badges"]) != instance["protected"]):
            return False
        for key, value in instance["metadata"].items():
            if f"{key} = {value}" not in fields["Metadata"]["text"]:
                return False
    return True


# ---- A registry with a data directory (it is restarted below), and what it holds ----------
data = os.path.join(work, "data")
main = Registry("main", ["--data-dir", data, "--checks", "on", "--min-ttl", "1"])
registries.append(main)
register(main, {"service": "api", "id": "api-1", "address": "http://10.0.0.1:8080", "tags": ["v2", "canary"],
                "metadata": {"version": "2.4.1"}, "weight": 200, "zone": "eu-west-1a", "ttl_seconds": 3600})
register(main, {"service": "api", "id": "api-2", "address": "http://10.0.0.2:8080", "tags": ["v2"],
                "zone": "eu-west-1b", "ttl_seconds": 3600})
register(main, {"service": "web", "address": "http://10.0.0.9:80", "status": "DOWN", "ttl_seconds": 3600})
# A check that fails at once: nothing listens on port 1.
register(main, {"service": "db", "id": "db-1", "address": "tcp://127.0.0.1:1", "ttl_seconds": 3600,
                "check": {"tcp": "127.0.0.1:1", "interval": "1s", "timeout": "1s"}})
hostile = ['<img src=x onerror="window.__xss=1">', "<script>window.__xss=2</script>"]
register(main, {"service": "xss", "id": '"><svg onload="window.__xss=3">', "address": "http://10.0.0.3:80",
                "tags": hostile, "metadata": {"note": '<iframe src="javascript:window.__xss=4">'}, "ttl_seconds": 3600})

desk = browser(1280)
try:
    # ---- The services table shows what /services says ---------------------------------------
    desk.get(main.url + "/")
    check(desk.current_url == main.url + "/ui", f"/ did not redirect a browser to /ui: {desk.current_url}")
    wait_until(lambda: "Live" in desk.find_element(By.ID, "live").text, 5, "the stream going live")
    # The failing check reaches its verdict within a second or two.
    wait_until(lambda: curl(main, "/discover/db?status=any")[0]["instances"][0]["health"] == "critical", 10, "db's check failing")
    wait_until(lambda: table_matches_services(desk, main), 5, "the services table showing /services")
    print("ok: the services table shows what /services says:", [row["name"] for row in rows(desk)], flush=True)
    problem_rows = [row["name"] for row in rows(desk) if "needs attention" in row["cells"][0]]
    check(problem_rows == ["db", "web"], f"problems marked: {problem_rows}")

    # ---- Values from clients render as text and run nothing ------------------------------------
    page_text = desk.find_element(By.ID, "services").text
    check(all(tag in page_text for tag in hostile), f"the hostile tags are not shown as text: {page_text}")
    check(desk.execute_script("return window.__xss === undefined"), "a tag's script ran")
    check(desk.execute_script("return document.querySelectorAll('main img, main script, main svg, main iframe').length") == 0,
          "a tag became an element")
    print("ok: tags holding HTML and script show as text, and nothing ran", flush=True)

    # ---- Live: a registration made with curl appears, an expiry disappears ---------------------
    register(main, {"service": "fresh", "address": "http://10.0.0.5:80", "ttl_seconds": 3600})
    shown_after = wait_until(lambda: any(row["name"] == "fresh" for row in rows(desk)), 5, "a registration appearing")
    print(f"ok: a registration made with curl appeared on the open page after {shown_after * 1000:.0f} ms", flush=True)
    register(main, {"service": "brief", "address": "http://10.0.0.6:80", "ttl_seconds": 1})
    wait_until(lambda: any(row["name"] == "brief" for row in rows(desk)), 5, "a short-lived registration appearing")
    registered = time.time()
    wait_until(lambda: not any(row["name"] == "brief" for row in rows(desk)), 6, "an expired instance disappearing")
    print(f"ok: an instance with a 1 s TTL disappeared {time.time() - registered:.2f} s after it was shown", flush=True)

    # ---- The filter box asks the server ----------------------------------------------------------
    prefix = desk.find_element(By.ID, "filter-prefix")
    prefix.send_keys("we")
    wait_until(lambda: [row["name"] for row in rows(desk)] == ["web"], 5, "the name filter")
    check(table_matches_services(desk, main, "/services?prefix=we"), "the filtered table differs from /services?prefix=we")
    urls = [url for url, _ in requested(desk)]
    check(any(url.endswith("/watch?prefix=we&limit=200") for url in urls), f"the filter was not sent to the server: {urls}")
    check("#/?prefix=we" in desk.current_url, f"the filter is not in the page's address: {desk.current_url}")
    prefix.send_keys(Keys.BACKSPACE, Keys.BACKSPACE)
    desk.find_element(By.ID, "filter-problems").click()
    wait_until(lambda: [row["name"] for row in rows(desk)][:2] == ["db", "web"], 5, "problems first")
    desk.find_element(By.ID, "filter-problems").click()
    wait_until(lambda: rows(desk) and rows(desk)[0]["name"] == "api", 5, "name order again")
    print("ok: the name filter and problems-first order are the server's (/watch?prefix=we&limit=200)", flush=True)

    # ---- The keyboard reaches a service ----------------------------------------------------------
    desk.find_element(By.TAG_NAME, "body").click()
    for _ in range(60):
        if desk.execute_script("return document.activeElement.dataset.key") == "service:api":
            break
        desk.switch_to.active_element.send_keys(Keys.TAB)
    check(desk.execute_script("return document.activeElement.dataset.key") == "service:api", "Tab never reached the api link")
    desk.switch_to.active_element.send_keys(Keys.ENTER)
    wait_until(lambda: desk.current_url.endswith("#/service/api"), 5, "Enter opening the service")
    print("ok: Tab reaches a service's link and Enter opens it", flush=True)

    # ---- A service's instances show what /discover says; the clocks tick -----------------------
    wait_until(lambda: cards_match_discover(desk, main, "api"), 5, "the instances showing /discover")
    before = cards(desk)[0]["fields"]["Last heartbeat"]["text"]
    wait_until(lambda: cards(desk)[0]["fields"]["Last heartbeat"]["text"] != before, 3, "the last heartbeat ticking")
    print(f"ok: api's instances show what /discover says; the last heartbeat ticks ({before} -> "
          f"{cards(desk)[0]['fields']['Last heartbeat']['text']})", flush=True)
    desk.get(main.url + "/ui#/service/db")
    wait_until(lambda: cards_match_discover(desk, main, "db"), 5, "db's instance")
    checks_text = cards(desk)[0]["fields"]["Checks"]["text"]
    check("critical" in checks_text and "127.0.0.1:1" in checks_text, f"db's failing check: {checks_text}")
    print(f"ok: a failing check shows its state and output: {checks_text!r}", flush=True)
    desk.get(main.url + "/ui#/service/xss")
    wait_until(lambda: cards_match_discover(desk, main, "xss"), 5, "xss's instance")
    check(desk.execute_script("return window.__xss === undefined"), "an id or metadata value ran a script")
    check(desk.execute_script("return document.querySelectorAll('main img, main script, main svg, main iframe').length") == 0,
          "an id or metadata value became an element")
    print("ok: an id and metadata holding HTML show as text on the service's page", flush=True)

    # ---- A service of 505 instances: the page shows the first 500 and says so --------------------
    for number in range(505):
        request = urllib.request.Request(main.url + "/register", method="POST", data=json.dumps(
            {"service": "big", "id": f"big-{number}", "address": f"http://10.1.{number // 250}.{number % 250}:80",
             "ttl_seconds": 3600}).encode())
        urllib.request.urlopen(request).read()
    desk.get(main.url + "/ui#/service/big")
    wait_until(lambda: len(cards(desk)) == 500, 10, "the first 500 of big's instances")
    summary_text = desk.find_element(By.ID, "service-summary").text
    check("505" not in summary_text and "the first 500" in summary_text, f"the cut is not said: {summary_text!r}")
    check(cards(desk)[499]["id"] == "big-499", f"not the first 500 in registration order: {cards(desk)[499]['id']}")
    print(f"ok: a service of 505 instances shows the first 500 and says so: {summary_text!r}", flush=True)
    for number in range(505):
        request = urllib.request.Request(main.url + "/deregister", method="POST", data=json.dumps(
            {"service": "big", "id": f"big-{number}"}).encode())
        urllib.request.urlopen(request).read()

    # ---- Actions: a status change from the page reaches /discover --------------------------------
    desk.get(main.url + "/ui#/service/api")
    wait_until(lambda: cards_match_discover(desk, main, "api"), 5, "api's instances")
    desk.find_element(By.CSS_SELECTOR, '[data-key="oos:api-2"]').click()
    took = wait_until(lambda: [i["id"] for i in curl(main, "/discover/api")[0]["instances"]] == ["api-1"], 5,
                      "OUT_OF_SERVICE reaching /discover")
    wait_until(lambda: cards(desk)[1]["fields"]["Status"]["badges"][0] == "OUT_OF_SERVICE", 5, "the card showing OUT_OF_SERVICE")
    desk.find_element(By.CSS_SELECTOR, '[data-key="up:api-2"]').click()
    wait_until(lambda: len(curl(main, "/discover/api")[0]["instances"]) == 2, 5, "UP reaching /discover")
    print(f"ok: OUT_OF_SERVICE set from the page reached /discover in {took * 1000:.0f} ms, and UP again", flush=True)
    desk.find_element(By.CSS_SELECTOR, '[data-key="dereg:api-2"]').click()
    desk.switch_to.alert.dismiss()
    time.sleep(0.3)
    check(len(curl(main, "/discover/api?status=any")[0]["instances"]) == 2, "a dismissed confirmation deregistered")
    desk.find_element(By.CSS_SELECTOR, '[data-key="dereg:api-2"]').click()
    alert = desk.switch_to.alert
    check("api-2" in alert.text, f"the confirmation does not name the instance: {alert.text}")
    alert.accept()
    wait_until(lambda: [i["id"] for i in curl(main, "/discover/api?status=any")[0]["instances"]] == ["api-1"], 5,
               "the deregistration reaching /discover")
    wait_until(lambda: [card["id"] for card in cards(desk)] == ["api-1"], 5, "the card going")
    print("ok: Deregister asks first (dismissed: nothing happens), then deregisters", flush=True)

    # ---- Screenshots at a desktop's width -------------------------------------------------------
    register(main, {"service": "api", "id": "api-2", "address": "http://10.0.0.2:8080", "tags": ["v2"],
                    "zone": "eu-west-1b", "ttl_seconds": 3600})
    wait_until(lambda: len(cards(desk)) == 2, 5, "api-2 back")
    desk.save_screenshot(os.path.join(shots, "dashboard-service-1280.png"))
    desk.get(main.url + "/ui")
    wait_until(lambda: table_matches_services(desk, main), 5, "the services table")
    desk.save_screenshot(os.path.join(shots, "dashboard-services-1280.png"))

    # ---- The stream cut (the registry stopped) and restored (started again) ----------------------
    main.stop()
    down_after = wait_until(lambda: "Stream down" in desk.find_element(By.ID, "live").text, 10, "the page saying the stream is down")
    print(f"ok: with the registry stopped the page says so after {down_after:.2f} s: "
          f"{desk.find_element(By.ID, 'live').text!r}", flush=True)
    main.start(main.port)
    back_after = wait_until(lambda: desk.find_element(By.ID, "live").text.startswith("Live"), 10, "the stream coming back")
    register(main, {"service": "after-restart", "address": "http://10.0.0.7:80", "ttl_seconds": 3600})
    wait_until(lambda: any(row["name"] == "after-restart" for row in rows(desk)), 5, "a registration after the restart")
    check(table_matches_services(desk, main), "the table after the restart differs from /services")
    print(f"ok: restarted, the page was live again {back_after:.2f} s later and follows changes", flush=True)

    check(not severe_logs(desk), f"the browser logged errors: {severe_logs(desk)}")
    print("ok: no errors in the browser's console (no CSP violation either)", flush=True)
finally:
    desk.quit()

# ---- A phone's width ------------------------------------------------------------------------
phone = browser(390)
try:
    phone.get(main.url + "/ui")
    wait_until(lambda: table_matches_services(phone, main), 5, "the services table at 390 px")
    overflow = phone.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    check(overflow <= 0, f"the page is {overflow} px wider than a 390 px screen")
    phone.save_screenshot(os.path.join(shots, "dashboard-services-390.png"))
    phone.get(main.url + "/ui#/service/api")
    wait_until(lambda: cards_match_discover(phone, main, "api"), 5, "api's instances at 390 px")
    overflow = phone.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    check(overflow <= 0, f"the service page is {overflow} px wider than a 390 px screen")
    phone.save_screenshot(os.path.join(shots, "dashboard-service-390.png"))
    print("ok: at 390 px nothing is wider than the screen", flush=True)
finally:
    phone.quit()
main.stop()

# ---- Tokens: read-only without one that may write; the token never in a URL ----------------------
acl = os.path.join(work, "acl.json")
with open(acl, "w") as file:
    json.dump({"tokens": [{"name": "ops", "token": OPS_TOKEN, "write": ["*"]},
                          {"name": "reader", "token": READER_TOKEN, "read": ["*"]}],
               "anonymous": {"read": ["*"]}}, file)
guarded = Registry("guarded", ["--in-memory", "--acl-file", acl, "--access-log"])
registries.append(guarded)
register(guarded, {"service": "api", "id": "api-1", "address": "http://10.0.0.1:8080", "ttl_seconds": 3600}, OPS_TOKEN)
page = browser(1280)
try:
    page.get(guarded.url + "/ui#/service/api")
    wait_until(lambda: len(cards(page)) == 1, 5, "api's instance, read anonymously")
    note = page.find_element(By.ID, "access")
    check("readonly" in note.get_attribute("class") and "Read-only" in note.text, f"no read-only notice: {note.text!r}")
    check(all(button["disabled"] for button in cards(page)[0]["buttons"]), "actions enabled without a token that may write")
    print(f"ok: without a token the page is read-only and says why: {note.text!r}", flush=True)

    def use_token(token):
        field = page.find_element(By.ID, "token")
        field.clear()
        field.send_keys(token, Keys.ENTER)

    use_token(READER_TOKEN)
    wait_until(lambda: 'the token "reader"' in page.find_element(By.ID, "access").text, 5, "the reader token's notice")
    check(all(button["disabled"] for button in cards(page)[0]["buttons"]), "actions enabled with a read-only token")
    use_token("not-a-token-anyone-knows")
    wait_until(lambda: "not one this registry knows" in page.find_element(By.ID, "access").text, 5, "an unknown token's notice")
    use_token(OPS_TOKEN)
    wait_until(lambda: 'Signed in with the token "ops"' in page.find_element(By.ID, "access").text, 5, "the ops token's notice")
    wait_until(lambda: len(cards(page)) == 1 and not any(button["disabled"] for button in cards(page)[0]["buttons"]), 5,
               "actions enabled with the ops token")
    page.find_element(By.CSS_SELECTOR, '[data-key="oos:api-1"]').click()
    wait_until(lambda: curl(guarded, "/discover/api?status=any")[0]["instances"][0]["status"] == "OUT_OF_SERVICE", 5,
               "the ops token's status change")
    print("ok: a reader token stays read-only, an unknown one is named, the ops token may act", flush=True)

    stored = page.execute_script("return sessionStorage.getItem('registry-token')")
    check(stored == OPS_TOKEN, "the token is not kept in sessionStorage")
    check(OPS_TOKEN not in page.current_url, "the token is in the page's address")
    requests = requested(page)
    check(not any(OPS_TOKEN in url or READER_TOKEN in url for url, _ in requests), f"a token in a request's URL: {requests}")
    check(any(url.endswith("/watch/api?status=any&limit=500") and headers.get("Authorization") == "Bearer " + OPS_TOKEN
              for url, headers in requests), "the stream was not sent the token in its Authorization header")
    # The access log has every request's target: no token in any.
    log = guarded.text()
    check("/watch/api" in log and OPS_TOKEN not in log and READER_TOKEN not in log, "a token reached the access log")
    page.refresh()
    wait_until(lambda: 'Signed in with the token "ops"' in page.find_element(By.ID, "access").text, 5,
               "the token surviving a reload of the tab")
    page.find_element(By.ID, "token-forget").click()
    wait_until(lambda: "Read-only" in page.find_element(By.ID, "access").text, 5, "Forget dropping the token")
    check(page.execute_script("return sessionStorage.getItem('registry-token')") is None, "Forget left the token stored")
    print("ok: the token lives in sessionStorage and headers only, never in a URL or the log; Forget drops it", flush=True)
    check(not severe_logs(page) or all("401" in entry["message"] for entry in severe_logs(page)),
          f"the browser logged errors: {severe_logs(page)}")
finally:
    page.quit()
guarded.stop()


# ---- Over HTTPS (--tls-port): the page's own writes pass the cross-site check ------------------
certs = os.path.join(work, "certs")
subprocess.run(["bash", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../scripts/make-certs.sh"), certs],
               check=True, capture_output=True)
secure = Registry("secure", ["--in-memory", "--tls-cert", os.path.join(certs, "server.pem"),
                             "--tls-key", os.path.join(certs, "server-key.pem"), "--tls-port", "0"])
registries.append(secure)
register(secure, {"service": "api", "id": "api-1", "address": "http://10.0.0.1:8080", "ttl_seconds": 3600})
page = browser(1280, trust_any_certificate=True)
try:
    page.get(secure.tls_url + "/ui#/service/api")
    wait_until(lambda: len(cards(page)) == 1, 10, "api's instance over HTTPS")
    page.find_element(By.CSS_SELECTOR, '[data-key="oos:api-1"]').click()
    wait_until(lambda: curl(secure, "/discover/api?status=any")[0]["instances"][0]["status"] == "OUT_OF_SERVICE", 5,
               "a status change from the page over HTTPS")
    check("Refused" not in page.find_element(By.ID, "service-note").text, page.find_element(By.ID, "service-note").text)
    print(f"ok: over HTTPS ({secure.tls_url}) the page reads the streams and its status change is accepted", flush=True)
finally:
    page.quit()
secure.stop()

# ---- Cluster mode: a real etcd member and two replicas; the page on either shows both ----------
def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


client_port, peer_port = free_port(), free_port()
etcd_log = open(os.path.join(work, "etcd.log"), "wb")
etcd = subprocess.Popen(
    ["etcd", "--name", "m1", "--data-dir", os.path.join(work, "etcd"),
     "--listen-client-urls", f"http://127.0.0.1:{client_port}", "--advertise-client-urls", f"http://127.0.0.1:{client_port}",
     "--listen-peer-urls", f"http://127.0.0.1:{peer_port}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
     "--initial-cluster", f"m1=http://127.0.0.1:{peer_port}", "--initial-cluster-state", "new",
     "--logger", "zap", "--log-level", "warn"], stdout=etcd_log, stderr=subprocess.STDOUT)
try:
    def etcd_healthy():
        with urllib.request.urlopen(f"http://127.0.0.1:{client_port}/health", timeout=1) as answer:
            return json.loads(answer.read())["health"] == "true"
    wait_until(etcd_healthy, 15, "etcd becoming healthy")
    replicas = []
    for name in ["r1", "r2"]:
        port = free_port()
        replica = Registry(name, ["--in-memory", "--etcd", f"http://127.0.0.1:{client_port}", "--replica-name", name,
                                  "--advertise-url", f"http://127.0.0.1:{port}"], port)
        registries.append(replica)
        replicas.append(replica)
    wait_until(lambda: all(curl(r, "/cluster")[0]["leader"] is not None for r in replicas)
               and all(len(curl(r, "/cluster")[0]["replicas"]) == 2 for r in replicas), 20, "both replicas agreeing on a leader")
    state, _ = curl(replicas[1], "/cluster")
    page = browser(1280)
    try:
        page.get(replicas[1].url + "/ui")
        wait_until(lambda: page.find_element(By.ID, "cluster").is_displayed(), 10, "the cluster panel")
        def panel_matches():
            shown = page.execute_script("""
                return [...document.querySelectorAll('#replicas tbody tr')].map((row) => [...row.children].map((c) => c.textContent));""")
            return ([row[0] for row in shown] == [r["name"] for r in state["replicas"]]
                    and [row[2] == "leader" for row in shown] == [r["leader"] for r in state["replicas"]]
                    and page.find_element(By.ID, "cluster-leader").text == state["leader"]["name"])
        wait_until(panel_matches, 10, "the cluster panel showing /cluster")
        text = page.find_element(By.ID, "cluster").text
        check("healthy" in text and f"127.0.0.1:{client_port}" in text, f"etcd's health is not shown: {text!r}")
        page.save_screenshot(os.path.join(shots, "dashboard-cluster-1280.png"))
        print(f"ok: in cluster mode the page shows the replicas, the leader ({state['leader']['name']}), lag and etcd's health",
              flush=True)
    finally:
        page.quit()
    for replica in replicas:
        replica.stop()
finally:
    etcd.terminate()
    etcd.wait(10)
print("done", flush=True)
