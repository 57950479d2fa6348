package drill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	agentv1 "github.com/kubectl-dr/kubectl-dr/api/dr/agent/v1"
	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/internal/buildinfo"
	"github.com/kubectl-dr/kubectl-dr/internal/recoveryplan"
	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/internal/store/drillreport"
	"github.com/kubectl-dr/kubectl-dr/plugin/agentclient"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/install"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// RunOptions for `kubectl dr drill`.
type RunOptions struct {
	genericiooptions.IOStreams
	f cmdutil.Factory

	Backup string
	Latest bool
	PG     []string
	Keep   bool
	// AllowUnsigned rehearses a snapshot whose record has no signature.
	AllowUnsigned bool
	RTOTarget     string
	RPOTarget     string
	Output        string

	rto, rpo time.Duration
	// now is the clock (tests pin it).
	now func() time.Time
}

// NewCmdRun returns the command that runs a drill.
func NewCmdRun(f cmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RunOptions{IOStreams: streams, f: f, now: time.Now}
	cmd := &cobra.Command{
		Use:   "drill [--backup ID|--latest] [--pg SOURCE]... [--keep]",
		Short: "Rehearse a full recovery in scratch on the agents' nodes and measure RTO and RPO",
		Long: `Rehearses the recovery plan that kubectl dr recover would run, without touching
live data: each agent restores its part into a scratch directory and serves
it on a loopback port (the datastore snapshot fetched, verified, restored
and counted; each node's restic snapshot restored and checked; each
PostgreSQL source restored from its newest base backup and archived WAL,
with the user's SQL checks; bucket samples), all in parallel, one progress
line per part.

RTO is what a real recovery of this backup would take on these nodes: the
longest part's restore steps plus the user's checks (the parts restore in
parallel). RPO is, per layer, the drill's start minus the newest point
restored. Both are judged against drill.rtoTarget and drill.rpoTarget of
the agents' config (30m and 5m unless set; --rto-target and --rpo-target
override). The report is kept in the store as drills/<id>.json and .html
(kubectl dr drill show ID -o html) and printed. Exit code 0 when the drill
passed, 1 when it failed (a part failed, naming the object, or a target
was missed).`,
		Example: `  kubectl dr drill
  kubectl dr drill --backup before-upgrade --pg pg-main
  kubectl dr drill --rto-target 15m -o json
  kubectl dr drill ls
  kubectl dr drill show drill-20261201-120000 -o html > report.html`,
		Args: cmdutil.NoArgs,
		RunE: cmdutil.RunE(o),
	}
	cmd.Flags().StringVar(&o.Backup, "backup", "", "rehearse this backup set's parts (kubectl dr backup ls)")
	cmd.Flags().BoolVar(&o.Latest, "latest", false, "rehearse each layer's newest point (the default)")
	cmd.Flags().StringArrayVar(&o.PG, "pg", nil, "rehearse only this PostgreSQL WAL source (repeatable; default every source)")
	cmd.Flags().BoolVar(&o.AllowUnsigned, "allow-unsigned", false, cmdutil.AllowUnsignedUsage)
	cmd.Flags().BoolVar(&o.Keep, "keep", false, "leave the scratch data on the nodes (named in the report); no process is left")
	cmd.Flags().StringVar(&o.RTOTarget, "rto-target", "", "RTO the drill must meet (a duration; default drill.rtoTarget of the agents' config)")
	cmd.Flags().StringVar(&o.RPOTarget, "rpo-target", "", "RPO every layer must meet (a duration; default drill.rpoTarget)")
	cmd.RegisterFlagCompletionFunc("backup", cmdutil.CompleteFlag(cmdutil.BackupSetNames(f)))
	cmd.RegisterFlagCompletionFunc("pg", cmdutil.CompleteFlag(cmdutil.WALSourceNames(f)))
	cmd.Flags().StringVarP(&o.Output, "output", "o", printers.Table, "output format: table, json or yaml")
	return cmd
}

// Complete defaults to the latest.
func (o *RunOptions) Complete(*cobra.Command, []string) error {
	if o.Backup == "" {
		o.Latest = true
	}
	return nil
}

// Validate checks the flags before any agent is asked.
func (o *RunOptions) Validate() error {
	if err := cmdutil.ValidateOutput(o.Output); err != nil {
		return err
	}
	if o.Output == printers.Wide {
		o.Output = printers.Table
	}
	if o.Backup != "" && o.Latest {
		return cmdutil.UsageError("--backup and --latest pick different points: give one")
	}
	if o.Backup != "" {
		if err := backupset.ValidateID(o.Backup); err != nil {
			return cmdutil.UsageError("--backup: %w", err)
		}
	}
	for _, t := range []struct {
		flag, v string
		d       *time.Duration
	}{{"--rto-target", o.RTOTarget, &o.rto}, {"--rpo-target", o.RPOTarget, &o.rpo}} {
		if t.v == "" {
			continue
		}
		d, err := time.ParseDuration(t.v)
		if err != nil || d <= 0 {
			return cmdutil.UsageError("%s %q: want a positive duration such as 30m or 90s", t.flag, t.v)
		}
		*t.d = d
	}
	return nil
}

// job is one part to rehearse: the report's part and the request for its
// agent (nil when the part cannot run: Part.NotRun or Part.Error say why).
type job struct {
	part drillreport.Part
	node *agentclient.Node
	req  *agentv1.RunDrillPartRequest
	// others may take the part when node cannot (a postgres part on a
	// node without PostgreSQL's server binaries).
	others []*agentclient.Node
	notes  []string
}

// Run picks the parts, rehearses them in parallel, judges and keeps the
// report.
func (o *RunOptions) Run(ctx context.Context) error {
	started := o.now().UTC()
	id := drillreport.NewID(started)
	store, err := o.f.OpenStore(ctx)
	if err != nil {
		return err
	}
	// Two drills started in the same second (a scheduled one and this)
	// get the next free second's name.
	for i := 1; ; i++ {
		exists, err := drillreport.Exists(ctx, store, id)
		if err != nil {
			return err
		}
		if !exists {
			break
		}
		if i == 60 {
			return fmt.Errorf("drills %s and the next minute's names are all taken in the store: run it again later", drillreport.NewID(started))
		}
		id = drillreport.NewID(started.Add(time.Duration(i) * time.Second))
	}
	nodes, err := agentclient.Connect(ctx, o.f.AgentOptions(nil))
	if err != nil {
		return err
	}
	defer nodes.Close()
	if len(nodes) == 0 {
		return errors.New("no agents found: is kubectl dr installed (kubectl dr install), or give --agent NODE=HOST:PORT")
	}
	var ready int
	for _, n := range nodes {
		if n.Ready() {
			ready++
		}
	}
	if ready == 0 {
		return fmt.Errorf("no agent answered, nothing can be rehearsed: %s", nodeErrors(nodes))
	}
	clusterID, _ := o.f.ClusterID(ctx)
	report := &drillreport.Report{ID: id, ClusterID: clusterID, Runner: o.f.User(), Started: started, Backup: drillreport.Latest,
		Tools: map[string]string{"kubectl-dr": buildinfo.Get().Version}}
	if o.Backup != "" {
		report.Backup = o.Backup
	}
	cfg, note := o.drillConfig(ctx)
	if note != "" {
		report.Notes = append(report.Notes, note)
	}
	report.Targets = o.targets(cfg)

	layers := layersOf(ctx, nodes)
	for _, n := range nodes {
		if n.Ready() {
			report.Tools["dr-agent on "+n.Node] = n.Info.GetAgentVersion()
			if v := n.Info.GetResticVersion(); v != "" {
				report.Tools["restic on "+n.Node] = v
			}
		}
	}
	records := cmdutil.RecordPolicy(ctx, o.f, o.AllowUnsigned)
	in, skipped, err := recoveryplan.Load(ctx, store, agentFiles{store: store, layers: layers, records: records}, started, records)
	if err != nil {
		return err
	}
	for _, sk := range skipped {
		fmt.Fprintln(o.ErrOut, "warning:", sk)
	}
	target := recoveryplan.Target{Latest: o.Latest, BackupSet: o.Backup}
	plan, err := recoveryplan.Pick(in, target)
	if errors.Is(err, recoveryplan.ErrNoSet) {
		return cmdutil.UsageError("--backup %s: %w", o.Backup, err)
	}
	if err != nil {
		return err
	}
	jobs, notes, err := o.jobs(plan, nodes, layers, cfg, id)
	if err != nil {
		return err
	}
	report.Notes = append(report.Notes, notes...)

	progress := printers.NewNodeProgress(o.ErrOut, o.Output)
	var wg sync.WaitGroup
	for i := range jobs {
		j := &jobs[i]
		if j.req == nil {
			if j.part.Error != "" {
				progress.Update(j.part.Key(), printers.ProgressEvent{Phase: "failed", Message: j.part.Error})
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.rehearse(ctx, j, progress)
		}()
	}
	wg.Wait()
	progress.Done()
	report.Ended = o.now().UTC()
	for _, j := range jobs {
		report.Parts = append(report.Parts, j.part)
		report.Notes = append(report.Notes, j.notes...)
	}
	interrupted := ctx.Err() != nil
	report.Interrupted = interrupted
	rto, rpo := agentconfig.Target(report.Targets.RTO), agentconfig.Target(report.Targets.RPO)
	report.Judge(rto, rpo)

	page, err := drillreport.HTML(report)
	if err != nil {
		return err
	}
	// The report is kept even after Ctrl-C: it says what ran.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	sign, err := cmdutil.RecordSigner(wctx, o.f)
	if err != nil {
		fmt.Fprintf(o.ErrOut, "warning: drill report %s is recorded unsigned: %v\n", report.ID, err)
	}
	if err := drillreport.Write(wctx, store, report, page, sign); err != nil {
		return err
	}
	if err := printers.Print(o.Out, o.Output, printers.NewDrillReport(report)); err != nil {
		return err
	}
	if o.Output == printers.Table {
		fmt.Fprintf(o.ErrOut, "Report saved as %s and %s (kubectl dr drill show %s -o html > report.html).\n", drillreport.JSONKey(id), drillreport.HTMLKey(id), id)
		for _, n := range report.Notes {
			fmt.Fprintln(o.ErrOut, "note:", n)
		}
	}
	if o.Keep {
		o.printKept(report)
	}
	switch {
	case interrupted:
		return &cmdutil.ExitError{Code: cmdutil.ExitInterrupted, Err: fmt.Errorf("drill %s interrupted: its parts were called off (each agent removes its scratch data and stops what the part started), and the report was saved as interrupted, not passed", id)}
	case !report.Passed:
		return fmt.Errorf("drill %s failed: %s", id, strings.Join(report.Reasons, "; "))
	}
	return nil
}

// drillConfig reads the drill section of the agents' ConfigMap; without
// it (no API server, not installed) the defaults, and a note saying so.
func (o *RunOptions) drillConfig(ctx context.Context) (agentconfig.Drill, string) {
	def := agentconfig.Drill{RTOTarget: agentconfig.DefaultDrillRTOTarget.String(), RPOTarget: agentconfig.DefaultDrillRPOTarget.String()}
	cs, err := o.f.Clientset()
	if err != nil {
		return def, fmt.Sprintf("the agents' config could not be read (%v): default targets, no checks", err)
	}
	rctx, cancel := context.WithTimeout(ctx, agentclient.CallTimeout)
	defer cancel()
	cm, tree, err := install.ReadConfig(rctx, cs, o.f.AgentNamespace())
	if err != nil {
		return def, fmt.Sprintf("the agents' config could not be read (%v): default targets, no checks", err)
	}
	if cm == nil {
		return def, "no agents' ConfigMap: default targets, no checks"
	}
	sub, ok := install.Lookup(tree, "drill")
	if !ok {
		return def, ""
	}
	data, err := json.Marshal(sub)
	if err != nil {
		return def, fmt.Sprintf("drill section of the agents' config: %v: default targets, no checks", err)
	}
	var d agentconfig.Drill
	if err := json.Unmarshal(data, &d); err != nil {
		return def, fmt.Sprintf("drill section of the agents' config: %v: default targets, no checks", err)
	}
	if agentconfig.Target(d.RTOTarget) == 0 {
		d.RTOTarget = def.RTOTarget
	}
	if agentconfig.Target(d.RPOTarget) == 0 {
		d.RPOTarget = def.RPOTarget
	}
	return d, ""
}

func (o *RunOptions) targets(cfg agentconfig.Drill) drillreport.Targets {
	t := drillreport.Targets{RTO: cfg.RTOTarget, RPO: cfg.RPOTarget, Source: "config"}
	if o.rto > 0 {
		t.RTO, t.Source = o.rto.String(), "flags"
	}
	if o.rpo > 0 {
		t.RPO, t.Source = o.rpo.String(), "flags"
	}
	return t
}

// rehearse runs one part on its agent and fills j.part from the result.
func (o *RunOptions) rehearse(ctx context.Context, j *job, progress *printers.NodeProgress) {
	key := j.part.Key()
	fail := func(msg string) {
		j.part.OK = false
		j.part.Error = msg
		progress.Update(key, printers.ProgressEvent{Phase: "failed", Message: msg})
	}
	progress.Update(key, printers.ProgressEvent{Phase: "start", Message: "on " + j.node.Node})
	stream, err := j.node.Conn.Drills().RunDrillPart(ctx, j.req)
	if err != nil {
		fail(agentclient.Explain(err))
		return
	}
	var result *agentv1.DrillPartResult
	for {
		msg, err := stream.Recv()
		if err != nil {
			if result != nil && agentclient.IsEOF(err) {
				break
			}
			if agentclient.Reason(err) == agentv1.ReasonNoPostgres && len(j.others) > 0 {
				j.notes = append(j.notes, fmt.Sprintf("%s: %s; rehearsed on %s instead", key, status.Convert(err).Message(), j.others[0].Node))
				j.node, j.others = j.others[0], j.others[1:]
				j.part.Node = j.node.Node
				o.rehearse(ctx, j, progress)
				return
			}
			switch {
			case ctx.Err() != nil:
				fail("interrupted")
			case status.Code(err) == codes.Unimplemented:
				j.part.NotRun = fmt.Sprintf("the agent on %s (dr-agent %s) cannot rehearse %s parts: upgrade it", j.node.Node, j.node.Info.GetAgentVersion(), j.part.Layer)
				progress.Update(key, printers.ProgressEvent{Phase: "not run", Message: j.part.NotRun})
			case agentclient.IsEOF(err):
				fail(fmt.Sprintf("the agent on %s ended the part without a result", j.node.Node))
			case !lost(err):
				fail(fmt.Sprintf("the agent on %s could not rehearse it: %s", j.node.Node, agentclient.Explain(err)))
			default:
				fail(fmt.Sprintf("the agent on %s stopped answering before the part finished: %s", j.node.Node, agentclient.Explain(err)))
			}
			return
		}
		switch ev := msg.Event.(type) {
		case *agentv1.RunDrillPartResponse_Progress:
			p := ev.Progress
			progress.Update(key, printers.ProgressEvent{Phase: p.Phase, Message: p.Message, BytesDone: p.BytesDone, BytesTotal: p.BytesTotal, FilesDone: p.FilesDone, FilesTotal: p.FilesTotal, Percent: p.Percent, ETASeconds: p.EtaSeconds})
		case *agentv1.RunDrillPartResponse_Result:
			result = ev.Result
		}
	}
	fromResult(&j.part, result)
	if j.part.OK {
		progress.Update(key, printers.ProgressEvent{Phase: "done", Message: fmt.Sprintf("restore %s on %s", drillreport.Human(restoreSeconds(j.part)), j.part.Node)})
	} else {
		progress.Update(key, printers.ProgressEvent{Phase: "failed", Message: strings.Join(j.part.Problems, "; ")})
	}
}

// lost reports whether err is the connection to the agent going away
// (the agent or its node died, the port-forward broke), not a refusal.
func lost(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded, codes.Unknown:
		return true
	}
	return false
}

func restoreSeconds(p drillreport.Part) float64 {
	var s float64
	for _, st := range p.Steps {
		if st.Restore {
			s += st.Seconds()
		}
	}
	return s
}

// fromResult copies an agent's result into the report's part.
func fromResult(p *drillreport.Part, r *agentv1.DrillPartResult) {
	if r.GetName() != "" {
		p.Name = r.Name
	}
	if r.GetNode() != "" {
		p.Node = r.Node
	}
	p.OK = r.GetOk()
	p.Problems = r.GetProblems()
	if !p.OK && len(p.Problems) == 0 {
		p.Problems = []string{"the agent reported a failure without naming a problem"}
	}
	for _, s := range r.GetSteps() {
		p.Steps = append(p.Steps, drillreport.Step{Name: s.Name, Start: s.GetStart().AsTime(), End: s.GetEnd().AsTime(), OK: s.Ok, Detail: s.Detail, Error: s.Error, Restore: s.Restore})
	}
	if r.GetRecoveryPoint() != nil {
		t := r.RecoveryPoint.AsTime()
		p.RecoveryPoint = &t
	}
	p.Facts, p.Counts = r.GetFacts(), r.GetCounts()
	for _, c := range r.GetChecks() {
		p.Checks = append(p.Checks, drillreport.Check{Name: c.Name, Query: c.Query, Expect: c.Expect, Got: c.Got, OK: c.Ok, Error: c.Error, DurationMS: c.DurationMs})
	}
	p.BytesRestored, p.FilesRestored, p.ScratchDir = r.GetBytesRestored(), r.GetFilesRestored(), r.GetScratchDir()
}

func nodeErrors(nodes agentclient.Nodes) string {
	var out []string
	for _, n := range nodes {
		if n.Err != nil {
			out = append(out, n.Err.Error())
		}
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

// printKept says where --keep left each part's scratch data and how to
// remove it (the agents remove nothing that was kept).
func (o *RunOptions) printKept(report *drillreport.Report) {
	var kept []string
	for _, p := range report.Parts {
		if p.ScratchDir != "" {
			line := fmt.Sprintf("  %s on node %s: %s", p.Key(), p.Node, p.ScratchDir)
			if b := p.Facts["scratchBucket"]; b != "" {
				line += fmt.Sprintf(", and the scratch bucket %s beside the source's (remove it with its objects: mc rb --force, aws s3 rb --force)", b)
			}
			kept = append(kept, line)
		}
	}
	if len(kept) == 0 {
		fmt.Fprintln(o.ErrOut, "--keep: no part left scratch data")
		return
	}
	fmt.Fprintf(o.ErrOut, "Scratch data kept (--keep); no process was left running on it:\n%s\nRemove it on each node when done: rm -rf <dir> (the agents never remove kept scratch data).\n", strings.Join(kept, "\n"))
}
