package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-obs/vigil/internal/pgtest"
)

// replica is a vigil serve process.
type replica struct {
	name string
	base string
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  strings.Builder
	done chan struct{} // closed when the process has exited
}

func (r *replica) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}

// startReplica runs bin serve with args and waits for its HTTP address.
// The process is killed at the end of the test.
func startReplica(t *testing.T, bin, name string, args ...string) *replica {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--http", "127.0.0.1:0", "--otlp-grpc=", "--otlp-http", "127.0.0.1:0", "--log-format", "json",
		"--jaeger-udp-compact=", "--jaeger-udp-binary=", "--jaeger-http=", "--jaeger-grpc=", "--zipkin=", "--consul-api="}, args...)...)
	// Only the flags configure the replica.
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "VIGIL_") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &replica{name: name, cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		defer close(r.done)
		re := regexp.MustCompile(`"msg":"serving","http":"([^"]+)"`)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			r.mu.Lock()
			r.log.WriteString(sc.Text() + "\n")
			r.mu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-r.done
		if t.Failed() {
			t.Logf("replica %s output:\n%s", name, r.output())
		}
	})
	select {
	case a := <-addr:
		r.base = "http://" + a
	case <-r.done:
		t.Fatalf("replica %s exited before serving:\n%s", name, r.output())
	case <-time.After(alertingDeadline):
		t.Fatalf("replica %s did not start:\n%s", name, r.output())
	}
	return r
}

// postJSON posts body to u, expecting a 2xx answer, and returns the
// string fields of the JSON object answered, if any.
func postJSON(t testing.TB, u, body string) map[string]string {
	t.Helper()
	resp, err := http.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %d %s", u, resp.StatusCode, raw)
	}
	out := map[string]string{}
	_ = json.Unmarshal(raw, &out)
	return out
}

// leaders reports whether r evaluates the rules and whether it
// dispatches the notifications.
func (r *replica) leaders() (rulesLeader, notifyLeader bool, desc string) {
	code, body := getBody(r.base + "/api/vigil/rules/status")
	var rs rulesStatus
	if code != 200 || json.Unmarshal(body, &rs) != nil {
		return false, false, fmt.Sprintf("%s rules status: %d %s", r.name, code, body)
	}
	code, nbody := getBody(r.base + "/api/vigil/alertmanager/status")
	var ns struct {
		Data struct {
			Leader bool `json:"leader"`
		} `json:"data"`
	}
	if code != 200 || json.Unmarshal(nbody, &ns) != nil {
		return false, false, fmt.Sprintf("%s notify status: %d %s", r.name, code, nbody)
	}
	return rs.Data.Leader, ns.Data.Leader, fmt.Sprintf("%s: rules %s, notify %s", r.name, body, nbody)
}

// firingJobs returns the job labels of the alerts named alertname r's
// rule API lists as firing, sorted.
func (r *replica) firingJobs(alertname string) ([]string, string) {
	code, body := getBody(r.base + "/api/v1/alerts")
	var out struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if code != 200 || json.Unmarshal(body, &out) != nil {
		return nil, fmt.Sprintf("%d %s", code, body)
	}
	var jobs []string
	for _, a := range out.Data.Alerts {
		if a.Labels["alertname"] == alertname && a.State == "firing" {
			jobs = append(jobs, a.Labels["job"])
		}
	}
	slices.Sort(jobs)
	return jobs, string(body)
}

// activeJobs returns the job labels of the alerts named alertname r's
// Alertmanager API lists as active, sorted.
func (r *replica) activeJobs(alertname string) ([]string, string) {
	code, body := getBody(r.base + "/api/v2/alerts")
	var as []v2Alert
	if code != 200 || json.Unmarshal(body, &as) != nil {
		return nil, fmt.Sprintf("%d %s", code, body)
	}
	var jobs []string
	for _, a := range as {
		if a.Labels["alertname"] == alertname && a.Status.State == "active" {
			jobs = append(jobs, a.Labels["job"])
		}
	}
	slices.Sort(jobs)
	return jobs, string(body)
}

const replicaRules = `groups:
  - name: jobs
    interval: 1s
    rules:
      - alert: JobDown
        expr: job_up == 0
        for: 1s
        labels:
          severity: page
        annotations:
          summary: 'job {{ $labels.job }} is down'
`

// TestAlertingTwoReplicas runs two vigil processes on one database with
// the same rules and routes: one evaluates and one dispatches, so every
// alert reaches the webhook once. When the replica doing both is killed,
// the other takes both over: the alerts already firing stay firing and
// are not notified again, and a new alert is notified.
func TestAlertingTwoReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "vigil")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	db := pgtest.NewDatabase(t)
	hook := newAlertHook(t)
	ruleFile := writeFile(t, dir, "jobs.yml", replicaRules)
	// One group per job: each alert is notified on its own.
	amFile := writeFile(t, dir, "alertmanager.yml", hookRoute(hook.URL(), []string{"alertname", "job"}, "1h"))
	// The rule files are re-read on SIGHUP (and POST /-/reload) only.
	cfgFile := writeFile(t, dir, "vigil.yml", "alerting:\n  watch_interval: 1h\n")
	args := []string{"--config", cfgFile, "--db", db, "--rules", ruleFile, "--default-rules=false", "--alertmanager-config", amFile}

	a := startReplica(t, bin, "a", args...)
	// a takes both leaderships before b starts.
	waitUntil(t, "replica a leads", func() (bool, string) {
		r, n, desc := a.leaders()
		return r && n, desc
	})
	b := startReplica(t, bin, "b", args...)
	waitUntil(t, "replica b serves the APIs", func() (bool, string) {
		code, body := getBody(b.base + "/readyz")
		return code == 200, string(body)
	})

	// Samples written to the follower reach the evaluating replica
	// through the shared store.
	down := func(r *replica, jobs ...string) {
		var series []map[string]string
		for _, j := range jobs {
			series = append(series, map[string]string{"__name__": "job_up", "job": j})
		}
		writeSamples(t, r.base, 0, series...)
	}
	// A silence created on the follower mutes the leader's notifications.
	silenceID := postJSON(t, b.base+"/api/v2/silences", fmt.Sprintf(`{"matchers":[{"name":"job","value":"batch","isRegex":false,"isEqual":true}],
		"startsAt":%q,"endsAt":%q,"createdBy":"oncall","comment":"batch window"}`,
		time.Now().UTC().Format(time.RFC3339), time.Now().Add(time.Hour).UTC().Format(time.RFC3339)))["silenceID"]
	if silenceID == "" {
		t.Fatal("no silence ID")
	}
	down(b, "api", "db", "batch")
	// An alert posted to the follower's Alertmanager API is dispatched by
	// the leader.
	postJSON(t, b.base+"/api/v2/alerts", `[{"labels":{"alertname":"ManualPage","job":"frontend"},"annotations":{"summary":"posted to b"}}]`)
	notified := func(job string) int {
		return len(hook.firing("JobDown", map[string]string{"job": job}))
	}
	waitUntil(t, "api, db and the posted alert notified", func() (bool, string) {
		return notified("api") > 0 && notified("db") > 0 && len(hook.firing("ManualPage", nil)) > 0, fmt.Sprintf("%+v", hook.messages())
	})
	for _, r := range []*replica{a, b} {
		waitUntil(t, "the alerts firing on replica "+r.name, func() (bool, string) {
			jobs, desc := r.firingJobs("JobDown")
			return slices.Equal(jobs, []string{"api", "batch", "db"}), desc
		})
		waitUntil(t, "batch silenced on replica "+r.name, func() (bool, string) {
			code, body := getBody(r.base + "/api/v2/alerts?" + url.Values{"filter": {`job="batch"`}}.Encode())
			var as []v2Alert
			if code != 200 || json.Unmarshal(body, &as) != nil || len(as) != 1 {
				return false, fmt.Sprintf("%d %s", code, body)
			}
			return as[0].Status.State == "suppressed" && slices.Equal(as[0].Status.SilencedBy, []string{silenceID}), string(body)
		})
	}
	if rl, nl, desc := b.leaders(); rl || nl {
		t.Fatalf("replica b leads while a does: %s", desc)
	}
	// The follower answers with the evaluating replica's rule state: the
	// rule evaluated, its alerts with their annotations.
	waitUntil(t, "the leader's rule state on replica b", func() (bool, string) {
		code, body := getBody(b.base + "/api/v1/rules?type=alert")
		return code == 200 && strings.Contains(string(body), `"health":"ok"`) &&
			strings.Contains(string(body), `"summary":"job api is down"`), string(body)
	})
	waitUntil(t, "annotated alerts on replica b", func() (bool, string) {
		code, body := getBody(b.base + "/api/v1/alerts")
		return code == 200 && strings.Contains(string(body), `"summary":"job db is down"`), string(body)
	})

	// Kill the replica that evaluates and dispatches.
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.done
	waitUntil(t, "replica b takes over", func() (bool, string) {
		r, n, desc := b.leaders()
		return r && n, desc
	})
	down(b, "cache")
	waitUntil(t, "cache notified after the takeover", func() (bool, string) {
		return notified("cache") > 0, fmt.Sprintf("%+v", hook.messages())
	})
	// No firing alert was lost: b's rules and Alertmanager list them all,
	// the silenced one still silenced.
	waitUntil(t, "all alerts firing on replica b", func() (bool, string) {
		jobs, desc := b.firingJobs("JobDown")
		return slices.Equal(jobs, []string{"api", "batch", "cache", "db"}), desc
	})
	waitUntil(t, "all alerts active in replica b's Alertmanager", func() (bool, string) {
		jobs, desc := b.activeJobs("JobDown")
		return slices.Equal(jobs, []string{"api", "cache", "db"}), desc
	})
	if jobs, desc := b.activeJobs("ManualPage"); !slices.Equal(jobs, []string{"frontend"}) {
		t.Errorf("the posted alert is not active on b: %s", desc)
	}
	// Each alert was notified once, across both replicas and the
	// takeover, and the silenced one never.
	for _, job := range []string{"api", "db", "cache"} {
		if n := notified(job); n != 1 {
			t.Errorf("job %s notified %d times, want once", job, n)
		}
	}
	if n := notified("batch"); n != 0 {
		t.Errorf("the silenced job was notified %d times", n)
	}
	if n := len(hook.firing("ManualPage", nil)); n != 1 {
		t.Errorf("the posted alert was notified %d times, want once", n)
	}
	groups := map[string]int{}
	for _, m := range hook.messages() {
		groups[m.GroupKey]++
		if len(m.Alerts) != 1 || m.Status != "firing" {
			t.Errorf("notification %s: %d alerts, status %s", m.GroupKey, len(m.Alerts), m.Status)
		}
	}
	for k, n := range groups {
		if n != 1 {
			t.Errorf("group %s notified %d times, want once", k, n)
		}
	}

	// SIGHUP reloads the rule files.
	writeFile(t, dir, "jobs.yml", replicaRules+`      - alert: JobsDown
        expr: count(job_up == 0) > 2
        labels:
          severity: page
`)
	if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the added rule fires after SIGHUP", func() (bool, string) {
		return len(hook.firing("JobsDown", nil)) == 1, fmt.Sprintf("%+v", hook.messages())
	})
}
