package cli

import (
	"errors"
	"fmt"
	"os"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/walobj"
)

// Exit codes of `dr-agent wal fetch`, as PostgreSQL's restore_command reads
// them: 1 ends recovery normally (the archive has no more), above 125
// aborts it (nothing wrong may be applied, and a store that is down must
// not look like the end of the archive).
const (
	fetchMissing = 1
	fetchAbort   = 255
)

func newWALCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "wal",
		Short: "PostgreSQL WAL archive commands",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newWALFetchCmd())
	return cmd
}

func newWALFetchCmd() *cobra.Command {
	var configFile, storeURL, clusterID, keyFile string
	cmd := &cobra.Command{
		Use:   "fetch SOURCE FILE DEST",
		Short: "Fetch one archived WAL file (for restore_command)",
		Long: `Fetches an archived WAL file of SOURCE from the store into DEST, checking it
against the checksum it was shipped with before DEST appears. For PostgreSQL's
restore_command:

  restore_command = 'dr-agent wal fetch --config /etc/dr-agent/config/config.yaml --key-file /root/snapshot.key pg-main %f %p'

WAL shipped by an agent with a snapshot key is encrypted to its recipient:
--key-file (the age identity, AGE-SECRET-KEY-1...) decrypts it; WAL stored in
clear needs none.

A database laid down by kubectl dr pg restore needs none of this: its WAL is
staged beside it, and its restore_command copies from there.

Exit codes: 0 fetched; 1 not in the archive (recovery ends there, as
PostgreSQL expects); 255 anything else: a corrupt object, a store that does
not answer, a key that does not decrypt it, bad arguments. PostgreSQL aborts
recovery on it rather than apply something wrong or stop early.`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			var identity age.Identity
			if keyFile != "" {
				id, err := dbsnap.LoadIdentity(keyFile)
				if err != nil {
					return &ExitError{Code: fetchAbort, Err: err}
				}
				identity = id
			}
			store, err := fetchStore(configFile, storeURL, clusterID)
			if err != nil {
				return &ExitError{Code: fetchAbort, Err: err}
			}
			err = walobj.Fetch(cmd.Context(), store, args[0], args[1], args[2], identity)
			if errors.Is(err, walobj.ErrKey) && keyFile == "" {
				err = fmt.Errorf("%w; give --key-file with the snapshot key", err)
			}
			switch {
			case err == nil:
				return nil
			case errors.Is(err, walobj.ErrNotFound):
				return &ExitError{Code: fetchMissing, Err: err}
			}
			return &ExitError{Code: fetchAbort, Err: err}
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "agent configuration file (store and cluster id)")
	cmd.Flags().StringVar(&storeURL, "store", "", "store URL, without --config (credentials and endpoint from DR_S3_ENDPOINT, AWS_* as for kubectl dr)")
	cmd.Flags().StringVar(&clusterID, "cluster-id", os.Getenv("DR_CLUSTER_ID"), "cluster id, without --config")
	cmd.Flags().StringVar(&keyFile, "key-file", "", "the snapshot key (age identity file) that decrypts encrypted WAL")
	return cmd
}

func fetchStore(configFile, storeURL, clusterID string) (objstore.Store, error) {
	var cfg objstore.Config
	if configFile != "" {
		var err error
		if clusterID, cfg, err = agentconfig.LoadStore(configFile); err != nil {
			return nil, err
		}
	} else {
		cfg = objstore.Config{URL: storeURL}.FromEnv()
	}
	if clusterID == "" {
		return nil, errors.New("no cluster id: give --config, or --cluster-id (or DR_CLUSTER_ID)")
	}
	store, err := objstore.Open(cfg)
	if err != nil {
		return nil, err
	}
	return store.Sub(clusterID), nil
}

// ExitError carries an exit code out of a command.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Code is the exit code for err.
func Code(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	if err != nil {
		return 1
	}
	return 0
}
