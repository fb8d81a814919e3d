package api_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAPIPackagesStandAlone checks the import rules inside web: each API
// package (web/api/<name>) imports web/api for what the APIs share and no
// other API package, and neither web nor web/api imports an API package:
// cmd/vigil builds each API and hands it to web as a web.Mounter.
func TestAPIPackagesStandAlone(t *testing.T) {
	const web = "github.com/vigil-obs/vigil/web"
	const apiPrefix = web + "/api/"
	out, err := exec.Command("go", "list", "-e", "-f", `{{.ImportPath}} {{join .Imports " "}}`, web+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		pkg, imps := fields[0], fields[1:]
		own := apiFamily(pkg, apiPrefix)
		if own != "" {
			seen++
		}
		for _, imp := range imps {
			other := apiFamily(imp, apiPrefix)
			if other == "" || other == own {
				continue
			}
			if own == "" {
				t.Errorf("%s imports the API package %s: cmd/vigil hands APIs to web as Mounters", pkg, imp)
			} else {
				t.Errorf("%s imports %s: an API package imports web/api, not another API", pkg, imp)
			}
		}
	}
	if seen < 3 {
		t.Fatalf("found %d API packages under %s, want at least jaegerapi, logsapi and promapi:\n%s", seen, apiPrefix, out)
	}
}

// apiFamily returns the API package pkg belongs to ("jaegerapi" for
// web/api/jaegerapi and anything below it), or "" when it is none.
func apiFamily(pkg, apiPrefix string) string {
	rest, ok := strings.CutPrefix(pkg, apiPrefix)
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return name
}
