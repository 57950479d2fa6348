// Command lab starts and stops the lab of real parts; hack/lab runs it.
//
//	hack/lab up [--etcd-members 1|3] [--nodes N]
//	hack/lab env      # shell exports: eval "$(hack/lab env)"
//	hack/lab down     # stops what up started, keeps the data
//	hack/lab clean    # removes the lab dir (after down)
//	hack/lab port     # prints a free loopback port (for scripts)
//	hack/lab image [FILE]  # the agent image as a tarball ($IMAGE_TAG)
package main
