package derive_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-obs/vigil/ingest/derive"
)

// decodeConfig decodes a derive section strictly over the defaults.
func decodeConfig(path string) (derive.Config, error) {
	c := derive.DefaultConfig()
	raw, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func TestConfigFiles(t *testing.T) {
	good, _ := filepath.Glob("testdata/*.good.yaml")
	bad, _ := filepath.Glob("testdata/*.bad.yaml")
	if len(good) == 0 || len(bad) == 0 {
		t.Fatal("no testdata")
	}
	for _, p := range good {
		t.Run(filepath.Base(p), func(t *testing.T) {
			if _, err := decodeConfig(p); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, p := range bad {
		t.Run(filepath.Base(p), func(t *testing.T) {
			if _, err := decodeConfig(p); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	c, err := decodeConfig("testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := derive.Config{Enabled: true, FlushInterval: 30 * time.Second, PairingTimeout: 5 * time.Second,
		SharedPairingTimeout: time.Minute, MaxPending: 50000, MaxOperationsPerService: 500, MaxSeries: 200000,
		SeriesIdleTimeout: 15 * time.Minute, Replica: "vigil-a"}
	if c != want {
		t.Errorf("decoded %+v, want %+v", c, want)
	}
	c, _ = decodeConfig("testdata/partial.good.yaml")
	if c.FlushInterval != 10*time.Second || c.PairingTimeout != 10*time.Second || !c.Enabled {
		t.Errorf("partial %+v", c)
	}
}
