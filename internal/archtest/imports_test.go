package archtest

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/vigil-obs/vigil"

// rule forbids packages under from (a path prefix relative to the
// module, "" for every package) to import packages under any of to,
// except packages under the exceptions.
type rule struct {
	from   string
	to     []string
	except []string
	why    string
}

var rules = []rule{
	{from: "", to: []string{"cmd"}, why: "nothing imports cmd"},
	{from: "", to: []string{"web"}, except: []string{"cmd", "web"}, why: "only cmd wires web"},
	{from: "query", to: []string{"ingest", "alerting"}, why: "query answers questions over storage"},
	{from: "alerting", to: []string{"ingest"}, why: "alerting reads through query and storage"},
	{from: "alerting/rules", to: []string{"alerting/notify"}, why: "evaluation and delivery meet only in cmd"},
	{from: "alerting/notify", to: []string{"alerting/rules"}, why: "evaluation and delivery meet only in cmd"},
	{from: "ingest", to: []string{"query", "alerting"}, why: "receivers know nothing of queries"},
	{from: "storage", to: []string{"query", "alerting", "ingest", "internal"}, why: "storage is below everything but migrations"},
	{from: "internal", to: []string{"query", "alerting", "ingest", "storage"}, except: []string{"internal/pgtest"}, why: "internal helpers serve the subsystems, not the other way round"},
	{from: "storage/postgres/spanstore", to: []string{"storage/postgres/logstore", "storage/postgres/metricstore", "storage/postgres/servicestore"}, why: "each store stands alone over the shared core"},
	{from: "storage/postgres/logstore", to: []string{"storage/postgres/spanstore", "storage/postgres/metricstore", "storage/postgres/servicestore"}, why: "each store stands alone over the shared core"},
	{from: "storage/postgres/metricstore", to: []string{"storage/postgres/spanstore", "storage/postgres/logstore", "storage/postgres/servicestore"}, why: "each store stands alone over the shared core"},
	{from: "storage/postgres/servicestore", to: []string{"storage/postgres/spanstore", "storage/postgres/logstore", "storage/postgres/metricstore"}, why: "each store stands alone over the shared core"},
}

// leafImports lists what the leaf package storage may not import: it holds
// sentinels and value types, no SQL driver.
var leafImports = []string{"github.com/jackc/pgx"}

func TestImportDirections(t *testing.T) {
	deps := imports(t, "./...")
	for pkg, imps := range deps {
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		for _, seg := range strings.Split(rel, "/") {
			if seg == "util" || seg == "utils" || seg == "common" || seg == "helpers" {
				t.Errorf("%s: no util or common packages; a helper two subsystems need goes to internal/<name>", rel)
			}
		}
		for _, imp := range imps {
			if !strings.HasPrefix(imp, module+"/") {
				if rel == "storage" {
					for _, l := range leafImports {
						if strings.HasPrefix(imp, l) {
							t.Errorf("storage imports %s: the leaf package holds no SQL", imp)
						}
					}
				}
				continue
			}
			to := strings.TrimPrefix(imp, module+"/")
			for _, r := range rules {
				if !under(rel, r.from) || anyUnder(rel, r.except) || !anyUnder(to, r.to) {
					continue
				}
				t.Errorf("%s imports %s: %s", rel, to, r.why)
			}
		}
	}
}

// TestClientImportsNoServer checks that the reference client, its own
// module, imports nothing of the server.
func TestClientImportsNoServer(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "./...")
	cmd.Dir = "../../client"
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list in client: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, module+"/") && !strings.HasPrefix(p, module+"/client") {
			t.Errorf("the client depends on %s", p)
		}
	}
}

// imports returns the module's non-test imports of each package matched
// by pattern.
func imports(t *testing.T, pattern string) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", pattern)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 {
			deps[f[0]] = f[1:]
		}
	}
	if len(deps) < 10 {
		t.Fatalf("go list found %d packages", len(deps))
	}
	return deps
}

// under reports whether pkg is prefix or below it ("" is above all).
func under(pkg, prefix string) bool {
	return prefix == "" || pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
}

func anyUnder(pkg string, prefixes []string) bool {
	for _, p := range prefixes {
		if under(pkg, p) {
			return true
		}
	}
	return false
}
