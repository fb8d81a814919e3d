package rules

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

func decodeConfig(t *testing.T, path string) (Config, error) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func TestConfigFiles(t *testing.T) {
	good, _ := filepath.Glob("testdata/*.good.yaml")
	bad, _ := filepath.Glob("testdata/*.bad.yaml")
	if len(good) < 2 || len(bad) < 5 {
		t.Fatalf("test data missing: %v %v", good, bad)
	}
	for _, f := range good {
		if _, err := decodeConfig(t, f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	for _, f := range bad {
		if _, err := decodeConfig(t, f); err == nil {
			t.Errorf("%s: accepted", f)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := decodeConfig(t, "testdata/empty.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.withDefaults()
	if !*cfg.DefaultRules || cfg.EvaluationInterval != model.Duration(time.Minute) ||
		cfg.OutageTolerance != model.Duration(time.Hour) || cfg.ForGracePeriod != model.Duration(10*time.Minute) ||
		cfg.ResendDelay != model.Duration(time.Minute) || cfg.WatchInterval != model.Duration(5*time.Second) {
		t.Errorf("defaults: %+v", cfg)
	}
	files, err := cfg.files()
	if err != nil || len(files) != 1 || files[0] != DefaultRulesFile {
		t.Errorf("files of the defaults: %v, %v", files, err)
	}

	full, err := decodeConfig(t, "testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	full = full.withDefaults()
	if *full.DefaultRules || full.EvaluationInterval != model.Duration(30*time.Second) || full.ExternalLabels["cluster"] != "prod-eu" {
		t.Errorf("full: %+v", full)
	}
	if files, err := full.files(); err != nil || len(files) != 0 {
		t.Errorf("files of full: %v, %v", files, err)
	}
	// YAML durations cannot be negative; values set in code can.
	err = Config{ResendDelay: -1}.Validate()
	if err == nil || !strings.Contains(err.Error(), "rules.resend_delay") {
		t.Errorf("negative resend delay: %v", err)
	}
}
