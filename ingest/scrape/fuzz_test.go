package scrape

import (
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzConfig: any scrape section is decoded or refused with an error,
// never a panic.
func FuzzConfig(f *testing.F) {
	for _, s := range []string{
		"config_file: x.yml",
		"scrape_configs: [{job_name: a, static_configs: [{targets: ['a:1']}]}]",
		"global: {scrape_interval: 1s}\nscrape_configs: [{job_name: a}]",
		"global:\nscrape_configs:\n",
		"scrape_configs: [{job_name: a, relabel_configs: [{regex: '('}]}]",
		"scrape_configs: [{job_name: a, consul_sd_configs: [{server: 'x:1'}], dns_sd_configs: [{names: [x], type: A}]}]",
		"foo: 1",
		"[1, 2]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 4096 {
			return
		}
		var c Config
		if err := yaml.Unmarshal([]byte(s), &c); err == nil {
			_ = c.Validate()
		}
	})
}
