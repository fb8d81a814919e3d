package derive

import (
	"errors"
	"time"
	"unicode/utf8"
)

// Config configures the deriver; it is the "derive" section of Vigil's
// configuration file.
type Config struct {
	// Enabled turns derivation on (default true).
	Enabled bool `yaml:"enabled"`
	// FlushInterval is the time between two writes of the series (15 s).
	FlushInterval time.Duration `yaml:"flush_interval"`
	// PairingTimeout is how long a half waits in memory for its partner
	// (10 s).
	PairingTimeout time.Duration `yaml:"pairing_timeout"`
	// SharedPairingTimeout is how long a half then waits in PostgreSQL
	// for a partner seen by another replica (30 s).
	SharedPairingTimeout time.Duration `yaml:"shared_pairing_timeout"`
	// MaxPending bounds the halves waiting in memory (100000); beyond,
	// new halves are dropped and counted.
	MaxPending int `yaml:"max_pending"`
	// MaxOperationsPerService bounds the span names held per service
	// (200); further names become "__overflow__".
	MaxOperationsPerService int `yaml:"max_operations_per_service"`
	// MaxSeries bounds the derived series held in memory (100000);
	// beyond, new series are dropped and counted.
	MaxSeries int `yaml:"max_series"`
	// SeriesIdleTimeout is how long a series may go without an update
	// before it is marked stale and forgotten (10 m).
	SeriesIdleTimeout time.Duration `yaml:"series_idle_timeout"`
	// Replica is the value of the vigil_replica label; "" means
	// "<hostname>-<6 random hex digits>".
	Replica string `yaml:"replica"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Enabled:                 true,
		FlushInterval:           15 * time.Second,
		PairingTimeout:          10 * time.Second,
		SharedPairingTimeout:    30 * time.Second,
		MaxPending:              100000,
		MaxOperationsPerService: 200,
		MaxSeries:               100000,
		SeriesIdleTimeout:       10 * time.Minute,
	}
}

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	switch {
	case c.FlushInterval <= 0:
		return errors.New("derive.flush_interval must be positive")
	case c.PairingTimeout <= 0:
		return errors.New("derive.pairing_timeout must be positive")
	case c.SharedPairingTimeout <= 0:
		return errors.New("derive.shared_pairing_timeout must be positive")
	case c.MaxPending <= 0:
		return errors.New("derive.max_pending must be positive")
	case c.MaxOperationsPerService <= 0:
		return errors.New("derive.max_operations_per_service must be positive")
	case c.MaxSeries <= 0:
		return errors.New("derive.max_series must be positive")
	case c.SeriesIdleTimeout < c.FlushInterval:
		return errors.New("derive.series_idle_timeout must be at least derive.flush_interval")
	case !utf8.ValidString(c.Replica) || len(c.Replica) > 256:
		return errors.New("derive.replica must be valid UTF-8 of at most 256 bytes")
	}
	return nil
}
