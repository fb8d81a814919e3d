package notify_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/vigil-obs/vigil/alerting/notify"
)

// decodeConfig decodes a config file strictly, as cmd/vigil does.
func decodeConfig(path string) (notify.Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return notify.Config{}, err
	}
	return decodeConfigBytes(raw)
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
	c, err := decodeConfig("testdata/webhooks.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Webhooks) != 2 || c.RepeatInterval.String() != "2h0m0s" || c.HistoryRetention.Hours() != 336 {
		t.Fatalf("decoded %+v", c)
	}
	// external_url belongs to the alerting section, which rules share.
	if _, err := decodeConfigBytes([]byte("external_url: https://vigil.example.com/\n")); err == nil {
		t.Fatal("external_url accepted as a key of the notify section")
	}
	c.ExternalURL = "vigil:8080"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "external_url") {
		t.Fatalf("Validate of a relative external URL: %v", err)
	}
}

func decodeConfigBytes(raw []byte) (notify.Config, error) {
	var c notify.Config
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, err
	}
	return c, c.Validate()
}
