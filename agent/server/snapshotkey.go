package server

import (
	"bytes"
	"errors"
	"log/slog"

	"filippo.io/age"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubectl-dr/kubectl-dr/agent/internal/drill"
	"github.com/kubectl-dr/kubectl-dr/agent/internal/restoreplan"
	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/store/dbsnap"
)

// snapshotRecipient is what the node encrypts snapshots, bootstrap files
// and bucket copies to: etcd.snapshotRecipientFile, or the recipient of
// the private key an older install put in etcd.snapshotKeyFile (with a
// warning: the key split keeps private keys off nodes). Nil: none.
func snapshotRecipient(e agentconfig.Etcd, log *slog.Logger) (age.Recipient, error) {
	const move = "the private snapshot key should not live on nodes: re-run kubectl dr install (it mounts only the public recipient), or set etcd.snapshotRecipientFile to a file holding age1..."
	switch {
	case e.SnapshotRecipientFile != "":
		r, private, err := dbsnap.LoadRecipient(e.SnapshotRecipientFile)
		if err != nil {
			return nil, err
		}
		if private {
			log.Warn("etcd.snapshotRecipientFile holds a private key; only its recipient is used: "+move, "file", e.SnapshotRecipientFile)
		}
		return r, nil
	case e.SnapshotKeyFile != "":
		r, _, err := dbsnap.LoadRecipient(e.SnapshotKeyFile)
		if err != nil {
			return nil, err
		}
		log.Warn("etcd.snapshotKeyFile is set: "+move, "file", e.SnapshotKeyFile)
		return r, nil
	}
	return nil, nil
}

// requestKey is the snapshot key for one request: the identity it
// carries, else the private key an older config names in
// etcd.snapshotKeyFile, else nil (what needs decrypting then fails with
// restoreplan.ErrNoKey). The identity stays in memory for the request:
// never logged, never written. Errors never quote it.
func (s *Server) requestKey(given []byte) (age.Identity, error) {
	if len(given) > 0 {
		id, err := dbsnap.ParseIdentity(bytes.NewReader(given), "in the request")
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		return id, nil
	}
	if f := s.cfg.Etcd.SnapshotKeyFile; f != "" {
		id, err := dbsnap.LoadIdentity(f)
		if err != nil {
			return nil, status.Errorf(codes.FailedPrecondition, "%v", err)
		}
		return id, nil
	}
	return nil, nil
}

// noKeyStatus is the status of a request that had to decrypt without the
// snapshot key; nil when err is another error.
func noKeyStatus(err error) error {
	if errors.Is(err, restoreplan.ErrNoKey) || errors.Is(err, dbsnap.ErrNoKey) || errors.Is(err, drill.ErrNoKey) {
		return failure(codes.FailedPrecondition, agentv1.ReasonSnapshotKeyNeeded, "%v; nothing was changed", err)
	}
	return nil
}
