package robots

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/common/model"
)

// manyAlerts returns n firing alerts with Chinese summaries of some length.
func manyAlerts(n int) []*alert.Alert {
	as := make([]*alert.Alert, n)
	for i := range as {
		as[i] = firing(fmt.Sprintf("第 %d 台主机的磁盘使用率超过百分之九十，请尽快清理日志目录", i),
			"alertname", "DiskFull", "severity", "warning", "instance", fmt.Sprintf("host-%03d:9100", i))
	}
	return as
}

var moreLine = regexp.MustCompile(`\n…and (\d+) more$`)

// checkCut checks a cut message: within limit, valid UTF-8, whole alerts
// followed by "…and N more" where N counts the alerts not shown.
func checkCut(t *testing.T, text string, limit, total int) {
	t.Helper()
	if len(text) > limit {
		t.Errorf("message is %d bytes, limit %d", len(text), limit)
	}
	if !utf8.ValidString(text) {
		t.Error("message is not valid UTF-8")
	}
	m := moreLine.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("message does not end with \"…and N more\":\n…%s", text[max(0, len(text)-200):])
	}
	left, _ := strconv.Atoi(m[1])
	shown := strings.Count(text, "**[FIRING] DiskFull**")
	if shown == 0 || shown+left != total {
		t.Errorf("%d alerts shown and %d more, want %d in all", shown, left, total)
	}
	// The last alert shown is whole: its block ends with its start time
	// (and the message with the link of the default template).
	body := strings.TrimSuffix(text, m[0])
	body = strings.TrimSuffix(body, "\n\n[View in Vigil](https://vigil.example.com/alerts)")
	if !strings.HasSuffix(body, "Started: 2026-03-14 09:00:00 UTC") {
		t.Errorf("the last alert shown is cut:\n…%s", body[max(0, len(body)-200):])
	}
}

func TestWeComCutsLongGroups(t *testing.T) {
	srv := newRobotServer(t, answer(http.StatusOK, `{"errcode":0,"errmsg":"ok"}`))
	in := build(t, robotReceiver(t, "wecom", srv.URL+robotPaths["wecom"], ""), Options{})
	if err := in.Notify(notifyContext(context.Background()), manyAlerts(200)...).Err(); err != nil {
		t.Fatal(err)
	}
	content := stringField(t, decodeBody(t, srv.Requests()[0].Body), "markdown.content")
	checkCut(t, content, weComMaxContent, 200)
}

func TestDingTalkCutsLongGroups(t *testing.T) {
	srv := newRobotServer(t, answer(http.StatusOK, `{"errcode":0,"errmsg":"ok"}`))
	in := build(t, robotReceiver(t, "dingtalk", srv.URL+robotPaths["dingtalk"], "s"), Options{})
	if err := in.Notify(notifyContext(context.Background()), manyAlerts(500)...).Err(); err != nil {
		t.Fatal(err)
	}
	text := stringField(t, decodeBody(t, srv.Requests()[0].Body), "markdown.text")
	checkCut(t, text, dingTalkMaxText, 500)
}

func TestFeishuCutsOnEncodedBodySize(t *testing.T) {
	srv := newRobotServer(t, answer(http.StatusOK, `{"code":0}`))
	r := robotReceiver(t, "feishu", srv.URL+robotPaths["feishu"], "s")
	// Quotes and newlines grow when JSON-encoded; the body must still fit.
	r.Feishu[0].Message = `{{ range .Alerts }}**[FIRING] DiskFull** "{{ .Annotations.summary }}"` + "\n\n\n\n" + `Started: 2026-03-14 09:00:00 UTC{{ "\n" }}{{ end }}`
	in := build(t, r, Options{})
	if err := in.Notify(notifyContext(context.Background()), manyAlerts(500)...).Err(); err != nil {
		t.Fatal(err)
	}
	req := srv.Requests()[0]
	if len(req.Body) > feishuMaxBody {
		t.Errorf("body is %d bytes, limit %d", len(req.Body), feishuMaxBody)
	}
	if len(req.Body) < feishuMaxBody-500 {
		t.Errorf("body is %d bytes: cut far below the limit %d", len(req.Body), feishuMaxBody)
	}
	content := stringField(t, decodeBody(t, req.Body), "card.elements.0.content")
	checkCut(t, content, feishuMaxBody, 500)
}

func TestMaxAlerts(t *testing.T) {
	srv := newRobotServer(t, answer(http.StatusOK, `{"errcode":0,"errmsg":"ok"}`))
	r := robotReceiver(t, "wecom", srv.URL+robotPaths["wecom"], "")
	r.WeCom[0].MaxAlerts = 2
	in := build(t, r, Options{})
	if err := in.Notify(notifyContext(context.Background()), manyAlerts(5)...).Err(); err != nil {
		t.Fatal(err)
	}
	content := stringField(t, decodeBody(t, srv.Requests()[0].Body), "markdown.content")
	// The link comes with the listed alerts, then the count of the rest.
	if !strings.HasSuffix(content, "[View in Vigil](https://vigil.example.com/alerts)\n…and 3 more") {
		t.Errorf("content ends %q", content[max(0, len(content)-120):])
	}
	if n := strings.Count(content, "**[FIRING] DiskFull**"); n != 2 {
		t.Errorf("%d alerts listed, want 2", n)
	}
	// The title counts the whole group.
	if !strings.Contains(content, "[FIRING:5] DiskFull") {
		t.Errorf("title does not count the group: %q", content[:80])
	}
}

func TestOneHugeAlertIsCutOnALine(t *testing.T) {
	srv := newRobotServer(t, answer(http.StatusOK, `{"errcode":0,"errmsg":"ok"}`))
	in := build(t, robotReceiver(t, "wecom", srv.URL+robotPaths["wecom"], ""), Options{})
	a := firing("摘要", "alertname", "Huge")
	a.Annotations["description"] = model.LabelValue(strings.Repeat("日志内容过长。", 2000))
	b := firing("second", "alertname", "Huge")
	if err := in.Notify(notifyContext(context.Background()), a, b).Err(); err != nil {
		t.Fatal(err)
	}
	content := stringField(t, decodeBody(t, srv.Requests()[0].Body), "markdown.content")
	if len(content) > weComMaxContent || !utf8.ValidString(content) {
		t.Fatalf("content is %d bytes, valid UTF-8 %v", len(content), utf8.ValidString(content))
	}
	want := "**[FIRING] Huge**\n摘要\n…and 1 more"
	if !strings.HasSuffix(content, want) {
		t.Errorf("content %q, want it to end %q", content, want)
	}
}

func TestCut(t *testing.T) {
	text := "第一行\n第二行很长很长\n第三行"
	cases := []struct {
		n, limit int
		measure  func(string) int
		want     string
	}{
		// On the last line boundary that fits.
		{2, len("第一行\n第二行很长很长\n…and 2 more"), byteLen, "第一行\n第二行很长很长\n…and 2 more"},
		{2, len("第一行\n第二行很长很长\n…and 2 more") - 1, byteLen, "第一行\n…and 2 more"},
		// No line fits: on a character, never inside one.
		{0, len("第一…"), byteLen, "第一…"},
		{0, len("第一…") + 2, byteLen, "第一…"},
		{3, len("第…\n…and 3 more"), byteLen, "第…\n…and 3 more"},
		// Nothing fits but part of the last line.
		{3, 5, byteLen, "…an"},
		// Measured as JSON: the quote counts twice.
		{1, jsonLen("a\"b\n…and 1 more"), jsonLen, "a\"b\n…and 1 more"},
		{1, jsonLen("a\"b\n…and 1 more") - 1, jsonLen, "…and 1 more"},
	}
	for _, tc := range cases {
		src := text
		if strings.HasPrefix(tc.want, "a") {
			src = "a\"b\ncd"
		}
		got := cut(src, tc.n, tc.limit, tc.measure)
		if got != tc.want {
			t.Errorf("cut(%q, %d, %d) = %q, want %q", src, tc.n, tc.limit, got, tc.want)
		}
		if tc.measure(got) > tc.limit || !utf8.ValidString(got) {
			t.Errorf("cut(%q, %d, %d) = %q: %d over the limit or invalid", src, tc.n, tc.limit, got, tc.measure(got))
		}
	}
}

func TestTidyRepairsUTF8(t *testing.T) {
	if got := tidy("ok\xff\xfe告警\n\n"); got != "ok\uFFFD告警" {
		t.Errorf("tidy = %q", got)
	}
}

// FuzzCut checks that a cut message always fits, stays valid UTF-8 and
// says that it was cut.
func FuzzCut(f *testing.F) {
	f.Add("第一行\n第二行很长很长\n第三行", 2, 20, false)
	f.Add("a\"b\ncd\n\n\n", 1, 18, true)
	f.Add(strings.Repeat("告警\n", 100), 0, 7, false)
	f.Add("", 5, 3, true)
	f.Fuzz(func(t *testing.T, text string, n, limit int, asJSON bool) {
		if len(text) > 1<<16 || n < 0 || n > 1e6 || limit < 0 || limit > 1<<17 {
			t.Skip()
		}
		text = tidy(text)
		measure := byteLen
		if asJSON {
			measure = jsonLen
		}
		got := cut(text, n, limit, measure)
		if measure(got) > limit {
			t.Fatalf("cut to %d, limit %d: %q", measure(got), limit, got)
		}
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8: %q", got)
		}
		tail := "…"
		if n > 0 {
			tail = more(n)
		}
		if measure(tail) <= limit && !strings.HasSuffix(got, tail) {
			t.Fatalf("%q does not end with %q", got, tail)
		}
	})
}
