"""Real SaltGUI in a real browser, for tests/recipes.rs (recipe `saltgui`).

Debian's chromium, headless, driven by chromium-driver through Selenium (from PyPI, in the
test venv), as a person would use SaltGUI: log in on its login page (eauth `file`), see
the minions page list every minion with its OS, open the events page, press play, start a
job, and see the job's returns arrive. Screenshots of both pages go to SHOT_DIR.

    python saltgui_browser.py BASE USER PASSWORD MINIONS SHOT_DIR PROFILE_DIR

BASE is SaltGUI's URL (https://salt.example.com), MINIONS a comma-separated list. Prints one
JSON object with what it saw; exits non-zero (with the page's text) when a step fails.
"""

import json
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE, USER, PASSWORD, MINIONS, SHOT_DIR, PROFILE = sys.argv[1:7]
MINIONS = MINIONS.split(",")
HOST = BASE.split("/")[2]
# Chromium's flags that work on this kind of machine (no background connections out).
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,900", f"--user-data-dir={PROFILE}",
    # The test CA is not in chromium's store; the name resolves only inside the machine.
    "--ignore-certificate-errors", f"--host-resolver-rules=MAP {HOST} 127.0.0.1",
]


def minion_row_id(minion):
    """SaltGUI's row id of a minion (Utils.getIdFromMinionId)."""
    import base64
    b = base64.b64encode(minion.encode()).decode()
    return "m" + b.replace("+", "-").replace("/", "_").replace("=", "")


def main():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    seen = {}
    try:
        wait = WebDriverWait(driver, 60, poll_frequency=0.25)
        driver.get(BASE + "/login")
        wait.until(lambda d: d.find_element(By.ID, "username").is_displayed())
        driver.find_element(By.ID, "username").send_keys(USER)
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        Select(driver.find_element(By.CSS_SELECTOR, "#login-panel select")).select_by_value("file")
        driver.find_element(By.ID, "login-button").click()

        # The minions page: one row per minion, its OS column filled from the grains.
        def os_cells(d):
            cells = {}
            for m in MINIONS:
                rows = d.find_elements(By.ID, minion_row_id(m))
                if not rows:
                    return False
                text = rows[0].find_element(By.CSS_SELECTOR, "td.os").text.strip()
                if not text or "loading" in text:
                    return False
                cells[m] = text
            return cells

        seen["os"] = wait.until(os_cells)
        seen["minions_url"] = driver.current_url
        driver.save_screenshot(f"{SHOT_DIR}/saltgui-minions.png")

        # The events page (SaltGUI's menu item; its pages are #hash routes): press play,
        # start a job, wait for every minion's return.
        driver.execute_script("document.getElementById('button-events1').click()")
        wait.until(lambda d: d.find_element(By.ID, "events-panel").is_displayed())
        play = wait.until(lambda d: [
            s for s in d.find_elements(By.CSS_SELECTOR, "#events-panel span.small-button-for-click")
            if s.is_displayed() and s.text.strip() in ("\u23f5", "\u25b6", "\u2bc8")
        ])
        play[0].click()
        time.sleep(1)
        jid = driver.execute_async_script(
            "const done = arguments[0];"
            "fetch('/api/', {method: 'POST', credentials: 'same-origin',"
            "  body: JSON.stringify({client: 'local_async', tgt: '*', fun: 'test.ping'})})"
            ".then((r) => r.json()).then((j) => done(j['return'][0].jid), (e) => done(String(e)));"
        )
        seen["jid"] = jid
        wanted = [f"salt/job/{jid}/ret/{m}" for m in MINIONS]

        def returns(d):
            tags = [td.text.strip() for td in d.find_elements(By.CSS_SELECTOR, "#events-panel td")]
            return tags if all(t in tags for t in wanted) else False

        seen["event_cells"] = [t for t in wait.until(returns) if t.startswith("salt/job/")]
        driver.save_screenshot(f"{SHOT_DIR}/saltgui-events.png")
        print(json.dumps(seen))
    except Exception as e:  # noqa: BLE001 - report what the page showed
        try:
            driver.save_screenshot(f"{SHOT_DIR}/saltgui-failure.png")
            body = driver.find_element(By.TAG_NAME, "body").text
        except Exception:  # noqa: BLE001
            body = "?"
        print(json.dumps({"error": repr(e), "url": driver.current_url, "page": body[:3000], **seen}))
        sys.exit(1)
    finally:
        driver.quit()


main()
