package registry

import (
	"errors"
	"time"
	"unicode/utf8"
)

// Config configures the registry; it is the "registry" section of Vigil's
// configuration file.
type Config struct {
	// NodeName is the one node every service is registered on, as the
	// API shows it ("vigil"). Every replica must use the same name.
	NodeName string `yaml:"node_name"`
	// NodeAddress is the node's address ("127.0.0.1"): Consul clients,
	// and Prometheus's consul_sd_configs, use it for a service registered
	// without an address.
	NodeAddress string `yaml:"node_address"`
	// Datacenter is the datacenter the API reports ("dc1").
	Datacenter string `yaml:"datacenter"`
	// MinCheckInterval is the shortest Interval (and TTL) a check may
	// have (1 s).
	MinCheckInterval time.Duration `yaml:"min_check_interval"`
	// DefaultCheckTimeout applies to HTTP, TCP and gRPC checks
	// registered without a Timeout (10 s).
	DefaultCheckTimeout time.Duration `yaml:"default_check_timeout"`
	// SweepInterval is how often the checking replica turns expired TTL
	// checks critical and deregisters services critical for longer than
	// their DeregisterCriticalServiceAfter (1 s).
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// PollInterval is how often a replica that lost its LISTEN session
	// re-reads the change index (1 s).
	PollInterval time.Duration `yaml:"poll_interval"`
	// HistoryRetention is how long status transitions are kept (7 days).
	HistoryRetention time.Duration `yaml:"history_retention"`
	// MaxChecksInFlight bounds the checks run at once (64).
	MaxChecksInFlight int `yaml:"max_checks_in_flight"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		NodeName:            "vigil",
		NodeAddress:         "127.0.0.1",
		Datacenter:          "dc1",
		MinCheckInterval:    time.Second,
		DefaultCheckTimeout: 10 * time.Second,
		SweepInterval:       time.Second,
		PollInterval:        time.Second,
		HistoryRetention:    7 * 24 * time.Hour,
		MaxChecksInFlight:   64,
	}
}

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	switch {
	case c.NodeName == "" || !utf8.ValidString(c.NodeName) || len(c.NodeName) > 128:
		return errors.New("registry.node_name must be valid UTF-8 of 1 to 128 bytes")
	case !utf8.ValidString(c.NodeAddress) || len(c.NodeAddress) > 256:
		return errors.New("registry.node_address must be valid UTF-8 of at most 256 bytes")
	case c.Datacenter == "" || !utf8.ValidString(c.Datacenter) || len(c.Datacenter) > 128:
		return errors.New("registry.datacenter must be valid UTF-8 of 1 to 128 bytes")
	case c.MinCheckInterval <= 0:
		return errors.New("registry.min_check_interval must be positive")
	case c.DefaultCheckTimeout <= 0:
		return errors.New("registry.default_check_timeout must be positive")
	case c.SweepInterval <= 0:
		return errors.New("registry.sweep_interval must be positive")
	case c.PollInterval <= 0:
		return errors.New("registry.poll_interval must be positive")
	case c.HistoryRetention <= 0:
		return errors.New("registry.history_retention must be positive")
	case c.MaxChecksInFlight <= 0:
		return errors.New("registry.max_checks_in_flight must be positive")
	}
	return nil
}
