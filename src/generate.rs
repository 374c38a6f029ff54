//! `hostbgp generate DIR` (hidden): the man pages and shell completions, made from the
//! clap definitions so they can never disagree with `--help`. `scripts/package.sh`
//! runs it before `cargo deb`; nothing else needs it at run time.
use std::fs;
use std::io::Write;
use std::path::Path;

use clap::Command;
use clap_complete::Shell;
use clap_mangen::Man;

/// What the main page says that clap does not know (the signals, files and exit codes
/// of the user-facing contract), in roff.
const DESCRIPTION: &str = r#".SH DESCRIPTION
\fBhostbgp\fR installs kernel routes for the external addresses of LXD/Incus
instances and advertises the host's subnets and those routes to upstream routers
over BGP. Its configuration uses LXD's own key names
(\fBcore.bgp_address\fR, \fBbgp.peers.\fINAME\fB.*\fR, \fBipv4.routes.external\fR, ...).
.PP
\fBhostbgp run\fR is the agent; systemd starts it as \fBhostbgp.service\fR.
The other commands talk to the running agent over its control socket (root only),
except \fBcheck\fR, which only reads the configuration.
"#;

const TAIL: &str = r#".SH SIGNALS
.TP
\fBSIGHUP\fR
Re\-read the configuration, as \fBhostbgp reload\fR. An invalid file is refused and
the running configuration stays.
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Stop for a restart: sessions are dropped without withdrawing anything and kernel
routes stay, so peers keep the routes under graceful restart and traffic keeps
flowing. This is what \fBsystemctl stop\fR and \fBsystemctl restart\fR send.
.TP
\fBSIGPWR\fR
Full shutdown, as \fBhostbgp shutdown\fR: withdraw every advertisement, close the
sessions with a Cease NOTIFICATION, remove the kernel routes the agent installed, exit 0.
.SH FILES
.TP
\fI/etc/hostbgp/hostbgp.yaml\fR
The configuration (LXD key names).
.TP
\fI/etc/hostbgp/conf.d/*.yaml\fR
Merged into the main file in name order.
.TP
\fI/run/hostbgp/hostbgp.sock\fR
The control socket (mode 0600).
.TP
\fI/etc/iproute2/rt_protos.d/hostbgp.conf\fR
Names route protocol 201, which tags the agent's kernel routes:
\fBip route show proto hostbgp\fR.
.TP
\fI/usr/share/doc/hostbgp/\fR
README.md (the user guide) and config.md (every configuration key).
.SH EXIT STATUS
0 on success; 1 for an invalid configuration or a failed command; 2 for usage errors.
"#;

/// The command as users see it: clap_complete would offer hidden subcommands (this
/// one) and clap has no way to remove a subcommand, so the visible ones are copied.
fn visible(cmd: &Command) -> Command {
    let mut out = Command::new("hostbgp")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    out
}

pub fn write_all(cmd: Command, dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    // No `help` subcommand in the man pages: each command has its page.
    let mut cmd = visible(&cmd).disable_help_subcommand(true);
    // Sets each subcommand's display name (`hostbgp-run`) and bin name (`hostbgp run`).
    cmd.build();

    let main = Man::new(cmd.clone()).section("8");
    let mut page = Vec::new();
    main.render_title(&mut page)?;
    main.render_name_section(&mut page)?;
    main.render_synopsis_section(&mut page)?;
    page.write_all(DESCRIPTION.as_bytes())?;
    main.render_subcommands_section(&mut page)?;
    page.write_all(TAIL.as_bytes())?;
    let mut see_also: Vec<String> = cmd
        .get_subcommands()
        .map(|s| format!("\\fBhostbgp\\-{}\\fR(8)", s.get_name()))
        .collect();
    see_also.extend(["\\fBsystemctl\\fR(1)", "\\fBip\\-route\\fR(8)"].map(String::from));
    writeln!(page, ".SH SEE ALSO\n{}", see_also.join(", "))?;
    main.render_version_section(&mut page)?;
    fs::write(dir.join("hostbgp.8"), once_preamble(&page))?;

    // One page per command, as git does, so each one's options are documented.
    for sub in cmd.get_subcommands() {
        Man::new(sub.clone()).section("8").generate_to(dir)?;
    }

    let mut cmd = visible(&cmd);
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, "hostbgp", dir)?;
    }
    Ok(())
}

/// Each section rendered on its own starts with clap_mangen's two-line preamble;
/// the page needs it once.
fn once_preamble(page: &[u8]) -> String {
    let text = String::from_utf8_lossy(page);
    let mut seen = std::collections::HashSet::new();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let preamble = line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq");
        if !preamble || seen.insert(line) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
