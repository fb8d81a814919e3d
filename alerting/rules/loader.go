package rules

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
)

//go:embed default_rules.yml
var defaultRules []byte

// DefaultRulesFile names the shipped rule pack where a file name is
// shown (the API's file field, logs, Status). It is not a path.
const DefaultRulesFile = "vigil:default_rules.yml"

// DefaultRules returns the shipped rule pack, a Prometheus rule file:
// HighErrorRate, HighLatency, HighMemoryUsage and ServiceDown in the
// group vigil-defaults, and HighSpanErrorRate and HighSpanLatency over the
// span-derived series in vigil-span-defaults, and ServiceSilent over the
// last-seen series of pushing services in vigil-liveness-defaults. The
// caller may modify the returned slice.
func DefaultRules() []byte { return slices.Clone(defaultRules) }

// ruleSet is one validated set of rule files: what a reload loads.
type ruleSet struct {
	files    []string          // identifiers, in load order
	contents map[string][]byte // content by identifier
	view     []*promrules.Group
}

// files returns the rule files cfg names: the shipped pack first, then
// every file the patterns match, each once, in pattern then name order.
func (c Config) files() ([]string, error) {
	var out []string
	seen := map[string]bool{}
	if c.DefaultRules == nil || *c.DefaultRules {
		out = append(out, DefaultRulesFile)
		seen[DefaultRulesFile] = true
	}
	for _, pat := range c.RuleFiles {
		fns, err := filepath.Glob(pat)
		if err != nil {
			return nil, fmt.Errorf("rule_files %q: %w", pat, err)
		}
		for _, fn := range fns {
			if !seen[fn] {
				seen[fn] = true
				out = append(out, fn)
			}
		}
	}
	return out, nil
}

// readFiles reads the rule files cfg names.
func (c Config) readFiles() ([]string, map[string][]byte, error) {
	files, err := c.files()
	if err != nil {
		return nil, nil, err
	}
	contents := make(map[string][]byte, len(files))
	for _, fn := range files {
		if fn == DefaultRulesFile {
			contents[fn] = defaultRules
			continue
		}
		b, err := os.ReadFile(fn)
		if err != nil {
			return nil, nil, fmt.Errorf("read rules: %w", err)
		}
		contents[fn] = b
	}
	return files, contents, nil
}

// loadSet reads and validates the configured rule files, exactly as the
// running manager will load them.
func (m *Manager) loadSet() (ruleSet, error) {
	files, contents, err := m.cfg.readFiles()
	if err != nil {
		return ruleSet{}, err
	}
	loader := newSnapshotLoader(m.parser, m.logger, contents)
	// A manager that never runs: it parses the groups for validation and
	// keeps them, never evaluated, as the view of a replica that does not
	// lead. Its metrics are registered nowhere.
	pm := promrules.NewManager(m.managerOptions(context.Background(), loader, promrules.NewGroupMetrics(nil)))
	groups, errs := pm.LoadGroups(time.Duration(m.cfg.EvaluationInterval), m.extLabels, m.cfg.ExternalURL, nil, false, files...)
	if len(errs) > 0 {
		return ruleSet{}, fmt.Errorf("load rules: %w", errors.Join(errs...))
	}
	view := slices.SortedFunc(maps.Values(groups), compareGroups)
	return ruleSet{files: files, contents: contents, view: view}, nil
}

func compareGroups(a, b *promrules.Group) int {
	if c := strings.Compare(a.File(), b.File()); c != 0 {
		return c
	}
	return strings.Compare(a.Name(), b.Name())
}

// snapshotLoader is a rules.GroupLoader over rule files read once, so
// that what was validated is exactly what is loaded, whatever happens to
// the files in between.
type snapshotLoader struct {
	parser parser.Parser
	logger *slog.Logger

	mu    sync.RWMutex
	files map[string][]byte
}

func newSnapshotLoader(p parser.Parser, logger *slog.Logger, files map[string][]byte) *snapshotLoader {
	return &snapshotLoader{parser: p, logger: logger, files: files}
}

// swap replaces the files and returns the previous ones.
func (l *snapshotLoader) swap(files map[string][]byte) map[string][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.files
	l.files = files
	return old
}

// Load parses one file of the snapshot with rulefmt, as rules.FileLoader
// parses a file on disk.
func (l *snapshotLoader) Load(identifier string, ignoreUnknownFields bool, scheme model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	l.mu.RLock()
	b, ok := l.files[identifier]
	l.mu.RUnlock()
	if !ok {
		return nil, []error{fmt.Errorf("%s: not in the loaded rule set", identifier)}
	}
	rgs, errs := rulefmt.Parse(b, ignoreUnknownFields, scheme, l.parser, l.logger)
	for i := range errs {
		errs[i] = fmt.Errorf("%s: %w", identifier, errs[i])
	}
	return rgs, errs
}

// Parse parses a rule's expression with Vigil's PromQL parser.
func (l *snapshotLoader) Parse(query string) (parser.Expr, error) {
	return l.parser.ParseExpr(query)
}

// fingerprint identifies the content of the rule files cfg names now; a
// different fingerprint means a reload is due. A file that cannot be read
// gives a fingerprint of its own, so that the reload reports the error.
func (c Config) fingerprint() string {
	files, contents, err := c.readFiles()
	if err != nil {
		return "error: " + err.Error()
	}
	return fingerprintOf(files, contents)
}

func fingerprintOf(files []string, contents map[string][]byte) string {
	h := sha256.New()
	for _, fn := range files {
		sum := sha256.Sum256(contents[fn])
		fmt.Fprintf(h, "%q %x\n", fn, sum)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}
