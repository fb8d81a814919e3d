package main

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	promconfig "github.com/prometheus/prometheus/config"
	"github.com/spf13/pflag"
)

// TestREADMEConfigurationTable checks the README's configuration table
// against the real Config and flags, both ways: every YAML key it names
// is a key of the file and every key of the file is named; every flag it
// names exists with the environment variable it gives, and every flag is
// named. So the table cannot drift from the code.
func TestREADMEConfigurationTable(t *testing.T) {
	rows := readmeConfigRows(t)
	fileKeys := map[string]bool{}
	yamlKeys(reflect.TypeOf(Config{}), "", fileKeys)

	documented := map[string]bool{}
	for _, r := range rows {
		for _, k := range r.keys {
			documented[k] = true
			if !fileKeys[k] {
				t.Errorf("README names YAML key %q, which Config does not have", k)
			}
		}
	}
	t.Logf("%d rows, %d YAML keys documented, %d in Config", len(rows), len(documented), len(fileKeys))
	for k := range fileKeys {
		if !documented[k] {
			t.Errorf("YAML key %q is not in the README's configuration table", k)
		}
	}

	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	c := defaultConfig()
	bindFlags(fs, &c)
	named := map[string]bool{"config": true} // --config is the command's own
	for _, r := range rows {
		if r.flag == "" {
			continue
		}
		named[r.flag] = true
		if r.flag != "config" && fs.Lookup(r.flag) == nil {
			t.Errorf("README names flag --%s, which vigil serve does not have", r.flag)
		}
		if want := envName(r.flag); r.env != want {
			t.Errorf("README gives --%s the variable %q, want %q", r.flag, r.env, want)
		}
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if !named[f.Name] {
			t.Errorf("flag --%s is not in the README's configuration table", f.Name)
		}
	})
}

// configRow is one row of the README's configuration table.
type configRow struct {
	flag, env string
	keys      []string
}

var backticked = regexp.MustCompile("`([^`]*)`")

// readmeConfigRows reads the table under "## Configuration". A YAML cell
// names keys in backticks; "`a.b` / `c`" names a.b and a.c.
func readmeConfigRows(t *testing.T) []configRow {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "\n## Configuration\n")
	if start < 0 {
		t.Fatal("README has no Configuration section")
	}
	text = text[start+1:]
	if end := strings.Index(text[3:], "\n## "); end >= 0 {
		text = text[:end+3]
	}
	var rows []configRow
	for _, line := range strings.Split(text, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 6 || !strings.HasPrefix(line, "|") || strings.Contains(line, "---") || strings.Contains(cells[1], "flag") {
			continue
		}
		var r configRow
		if m := backticked.FindStringSubmatch(cells[1]); m != nil {
			r.flag = strings.TrimPrefix(m[1], "--")
		}
		if m := backticked.FindStringSubmatch(cells[2]); m != nil {
			r.env = m[1]
		}
		parent := ""
		for i, m := range backticked.FindAllStringSubmatch(cells[3], -1) {
			k := m[1]
			if strings.ContainsAny(k, " :\"") {
				continue // an example value, not a key
			}
			if !strings.Contains(k, ".") && i > 0 && parent != "" {
				k = parent + "." + k
			}
			if i := strings.LastIndex(k, "."); i >= 0 {
				parent = k[:i]
			}
			r.keys = append(r.keys, k)
		}
		rows = append(rows, r)
	}
	if len(rows) < 10 {
		t.Fatalf("found %d rows in the configuration table", len(rows))
	}
	return rows
}

// leafTypes are decoded from one YAML value although they are structs.
var leafTypes = []reflect.Type{reflect.TypeOf(time.Time{}), reflect.TypeOf(promconfig.GlobalConfig{})}

// yamlKeys adds to keys the dotted YAML keys of the leaves of t, as
// gopkg.in/yaml.v3 decodes them (inline structs merge into their parent).
func yamlKeys(t reflect.Type, prefix string, keys map[string]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || slices.Contains(leafTypes, t) {
		keys[prefix] = true
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if strings.Contains(opts, "inline") {
			yamlKeys(f.Type, prefix, keys)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if prefix != "" {
			name = prefix + "." + name
		}
		yamlKeys(f.Type, name, keys)
	}
}
