package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigil-obs/vigil/internal/pgtest"
)

const uiAlertRules = `groups:
  - name: ui
    interval: 1s
    rules:
      - alert: UIHighLatency
        expr: vector(1)
        labels:
          severity: page
          service: checkout
        annotations:
          summary: 'checkout is slow'
      - alert: UIControl
        expr: vector(1)
        labels:
          severity: info
`

// v2Silence is a silence of Alertmanager's GET /api/v2/silences.
type v2Silence struct {
	ID       string `json:"id"`
	Matchers []struct {
		Name    string `json:"name"`
		Value   string `json:"value"`
		IsRegex bool   `json:"isRegex"`
		IsEqual *bool  `json:"isEqual"`
	} `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
	Status    struct {
		State string `json:"state"`
	} `json:"status"`
}

func silences(base string) ([]v2Silence, string) {
	code, body := getBody(base + "/api/v2/silences")
	var ss []v2Silence
	if code != 200 || json.Unmarshal(body, &ss) != nil {
		return nil, fmt.Sprintf("%d %s", code, body)
	}
	return ss, string(body)
}

// TestAlertingUIBrowser silences a firing alert from the alerts page:
// the silence created from the alert's card is listed, the alert shows
// as silenced, and its repeated notifications stop while another
// alert's go on; expiring the silence resumes them. The rules tab lists
// the rules, and the page renders in Chinese.
func TestAlertingUIBrowser(t *testing.T) {
	requireUI(t)
	chromium := chromiumPath(t)
	dir := t.TempDir()
	hook := newAlertHook(t)
	ruleFile := writeFile(t, dir, "ui.yml", uiAlertRules)
	// Notifications of a still-firing alert repeat every 2s.
	amFile := writeFile(t, dir, "alertmanager.yml", hookRoute(hook.URL(), []string{"alertname"}, "2s"))
	off := false
	ts := startServer(t, pgtest.NewDatabase(t), func(c *Config) {
		c.Alerting.Rules.RuleFiles = []string{ruleFile}
		c.Alerting.Rules.DefaultRules = &off
		c.Alerting.Notify.AlertmanagerConfig = amFile
	})
	base := ts.httpURL
	count := func(alertname string) int { return len(hook.firing(alertname, nil)) }
	// Both alerts are notified, and repeated.
	waitUntil(t, "repeated notifications", func() (bool, string) {
		return count("UIHighLatency") >= 2 && count("UIControl") >= 2, fmt.Sprintf("%+v", hook.messages())
	})

	b := newBrowser(t, chromium)
	card := `.alert-card[data-alertname="UIHighLatency"]`
	b.do(t, chromedp.Navigate(base+"/alerts"))
	b.waitFor(t, fmt.Sprintf(`(() => { const c = document.querySelector('%s'); return c && c.textContent.includes('checkout is slow') && c.querySelector('.badge.state-firing'); })()`, card))
	b.screenshot(t, "alerts-active")

	// Silence it from its card.
	b.do(t, chromedp.Click(chromedp.CSS(card+" .silence-alert")))
	b.waitFor(t, `new URLSearchParams(location.search).get('tab') === 'silences' &&
		(document.querySelector('input[name=matchers]')?.value ?? '').includes('alertname="UIHighLatency"')`)
	// The duration typed is the first one of at least an hour that the
	// hours input's min and step accept.
	hours := eval[string](t, b, `(() => { const i = document.querySelector('input[name=hours]');
		const min = parseFloat(i.min) || 0, step = parseFloat(i.step);
		const v = Number.isFinite(step) && step > 0 ? +(min + Math.ceil((1 - min) / step) * step).toFixed(6) : 1;
		Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(i, String(v));
		i.dispatchEvent(new Event('input', { bubbles: true }));
		return i.checkValidity() ? String(v) : 'invalid ' + v; })()`)
	if strings.HasPrefix(hours, "invalid") {
		t.Fatalf("hours input: %s", hours)
	}
	b.do(t,
		chromedp.SendKeys(chromedp.CSS(`input[name=author]`), "oncall"),
		chromedp.SendKeys(chromedp.CSS(`input[name=comment]`), "fix being deployed"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
	)
	b.waitFor(t, `[...document.querySelectorAll('tr[data-silence]')].some((r) => r.textContent.includes('UIHighLatency') && r.textContent.includes('oncall'))`)
	b.screenshot(t, "alerts-silences")

	ss, desc := silences(base)
	if len(ss) != 1 || ss[0].CreatedBy != "oncall" || ss[0].Comment != "fix being deployed" || ss[0].Status.State != "active" {
		t.Fatalf("silences after the form: %s", desc)
	}
	sil := ss[0]
	if h, err := strconv.ParseFloat(hours, 64); err != nil || sil.EndsAt.Sub(sil.StartsAt).Round(time.Minute) != time.Duration(h*float64(time.Hour)).Round(time.Minute) {
		t.Errorf("silence from %s to %s, want %s hours", sil.StartsAt, sil.EndsAt, hours)
	}
	var names []string
	for _, m := range sil.Matchers {
		names = append(names, m.Name+"="+m.Value)
		if m.IsRegex || (m.IsEqual != nil && !*m.IsEqual) {
			t.Errorf("matcher %+v is not an equality", m)
		}
	}
	if !slices.Contains(names, "alertname=UIHighLatency") || slices.Contains(names, "alertname=UIControl") {
		t.Errorf("silence matchers %v", names)
	}
	if got := eval[string](t, b, fmt.Sprintf(`document.querySelector('tr[data-silence=%q]')?.textContent ?? ''`, sil.ID)); got == "" {
		t.Errorf("silence %s has no row of its own", sil.ID)
	}

	// The alert is silenced by it.
	waitUntil(t, "alert suppressed", func() (bool, string) {
		code, body := getBody(base + "/api/v2/alerts?" + url.Values{"filter": {`alertname="UIHighLatency"`}, "silenced": {"true"}}.Encode())
		var as []v2Alert
		if code != 200 || json.Unmarshal(body, &as) != nil || len(as) != 1 {
			return false, fmt.Sprintf("%d %s", code, body)
		}
		return as[0].Status.State == "suppressed" && slices.Equal(as[0].Status.SilencedBy, []string{sil.ID}), string(body)
	})
	b.do(t, chromedp.Navigate(base+"/alerts?tab=alerts"))
	b.waitFor(t, fmt.Sprintf(`(() => { const c = document.querySelector('%s'); return c && c.querySelector('.badge.state-suppressed') && c.textContent.includes(%q); })()`, card, sil.ID))
	if eval[bool](t, b, `!!document.querySelector('.alert-card[data-alertname="UIControl"] .badge.state-firing')`) != true {
		t.Errorf("the other alert is not shown firing")
	}
	b.screenshot(t, "alerts-silenced")

	// Its notifications stop while the other alert's keep repeating. A
	// flush already past the silence when it was created may still
	// deliver: counting starts after two more notifications of the other
	// alert.
	c0 := count("UIControl")
	waitUntil(t, "notifications of the unsilenced alert", func() (bool, string) {
		return count("UIControl") >= c0+2, fmt.Sprint(count("UIControl"))
	})
	silenced := count("UIHighLatency")
	c1 := count("UIControl")
	waitUntil(t, "three more repeats of the unsilenced alert", func() (bool, string) {
		return count("UIControl") >= c1+3, fmt.Sprint(count("UIControl"))
	})
	if n := count("UIHighLatency"); n != silenced {
		t.Errorf("the silenced alert was notified %d more times", n-silenced)
	}

	// Expiring the silence from its row resumes them.
	b.do(t, chromedp.Navigate(base+"/alerts?tab=silences"))
	b.waitFor(t, fmt.Sprintf(`!!document.querySelector('tr[data-silence=%q] .expire-silence')`, sil.ID))
	b.do(t, chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-silence=%q] .expire-silence`, sil.ID))))
	b.waitFor(t, fmt.Sprintf(`!document.querySelector('tr[data-silence=%q] .expire-silence')`, sil.ID))
	waitUntil(t, "silence expired", func() (bool, string) {
		ss, desc := silences(base)
		return len(ss) == 1 && ss[0].Status.State == "expired", desc
	})
	waitUntil(t, "notifications resume after the silence expired", func() (bool, string) {
		return count("UIHighLatency") > silenced, fmt.Sprint(count("UIHighLatency"))
	})

	// The rules tab lists both rules, firing.
	b.do(t, chromedp.Navigate(base+"/alerts?tab=rules"))
	for _, r := range []string{"UIHighLatency", "UIControl"} {
		b.waitFor(t, fmt.Sprintf(`(() => { const r = document.querySelector('tr[data-rule=%q]'); return r && r.querySelector('.badge.state-firing') && r.textContent.includes('vector(1)'); })()`, r))
	}
	b.screenshot(t, "alerts-rules")

	// In Chinese.
	_ = eval[chromedp.Void](t, b, `(() => { const s = document.querySelector('.lang-select'); s.value = 'zh-CN'; s.dispatchEvent(new Event('change', { bubbles: true })); })()`)
	b.waitFor(t, `document.querySelector('.alerts-page h1')?.textContent === '告警' &&
		document.querySelector('[data-tab=rules]')?.textContent === '规则' &&
		document.querySelector('[data-tab=silences]')?.textContent === '静默'`)
	b.screenshot(t, "alerts-rules-zh")
}
