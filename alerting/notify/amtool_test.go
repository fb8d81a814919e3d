package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vigil-obs/vigil/alerting/notify"
)

// amtoolPath finds Alertmanager's amtool: without it the test is skipped,
// unless CI is set, where it fails.
func amtoolPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("amtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("amtool not found: %v", err)
		}
		t.Skipf("amtool not found: %v", err)
	}
	return p
}

// TestAmtool checks APIHandler with Alertmanager's own client against a
// loopback server: alert query, silence add, query and expire.
func TestAmtool(t *testing.T) {
	bin := amtoolPath(t)
	pool := newDB(t)
	b := start(t, pool, notify.Config{}, nil)
	srv := httptest.NewServer(b.n.APIHandler())
	t.Cleanup(srv.Close)
	ctx := context.Background()
	home := t.TempDir() // no amtool.yml of the machine's user
	amtool := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--alertmanager.url=" + srv.URL}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+home)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("amtool %v: %v\n%s%s", args, err, out, stderrOf(err))
		}
		return string(out)
	}

	if err := b.n.Send(ctx, notify.Alert{
		Labels:      labelsOf("alertname", "HighErrorRate", "service", "cart"),
		Annotations: labelsOf("summary", "5% errors"),
	}); err != nil {
		t.Fatal(err)
	}
	var alerts []struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		Status      struct {
			State string `json:"state"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(amtool("alert", "query", "-o", "json")), &alerts); err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 1 || alerts[0].Labels["service"] != "cart" || alerts[0].Annotations["summary"] != "5% errors" || alerts[0].Status.State != "active" {
		t.Fatalf("amtool alert query = %+v", alerts)
	}

	id := strings.TrimSpace(amtool("silence", "add", "alertname=HighErrorRate", "service=cart",
		"--comment=deploying", "--author=ops", "--duration=1h"))
	if len(id) != 36 {
		t.Fatalf("silence add printed %q, want an id", id)
	}
	var sils []struct {
		ID        string `json:"id"`
		CreatedBy string `json:"createdBy"`
		Comment   string `json:"comment"`
		Status    struct {
			State string `json:"state"`
		} `json:"status"`
		Matchers []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"matchers"`
	}
	if err := json.Unmarshal([]byte(amtool("silence", "query", "-o", "json")), &sils); err != nil {
		t.Fatal(err)
	}
	if len(sils) != 1 || sils[0].ID != id || sils[0].CreatedBy != "ops" || sils[0].Comment != "deploying" ||
		sils[0].Status.State != "active" || len(sils[0].Matchers) != 2 {
		t.Fatalf("amtool silence query = %+v", sils)
	}
	// The silence mutes the alert.
	if out := amtool("alert", "query", "-o", "json"); strings.Contains(out, "HighErrorRate") {
		t.Fatalf("silenced alert still listed as active: %s", out)
	}
	if err := json.Unmarshal([]byte(amtool("alert", "query", "--silenced", "-o", "json")), &alerts); err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 1 || alerts[0].Status.State != "suppressed" {
		t.Fatalf("silenced alerts = %+v", alerts)
	}

	amtool("silence", "expire", id)
	if out := strings.TrimSpace(amtool("silence", "query", "-q")); out != "" {
		t.Fatalf("active silences after expire: %q", out)
	}
	if out := amtool("silence", "query", "--expired", "-q"); !strings.Contains(out, id) {
		t.Fatalf("expired silence not listed: %q", out)
	}
}

func stderrOf(err error) []byte {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.Stderr
	}
	return nil
}
