// snapvirt: the command-line client for snapvirtd's HTTP API (docs/cli.md).
// Parses the command line (CLI11), picks the daemon and the credentials, runs one command and
// turns its outcome into an exit code a script can branch on (cli/errors.hpp).

#include "cli/commands.hpp"
#include "config/vocabulary.hpp"

#include <CLI/CLI.hpp>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>

namespace {

using namespace snapvirt;
using namespace snapvirt::cli;

constexpr const char* default_socket = "/run/snapvirt/snapvirtd.sock";

struct Globals {
    std::string socket, url, token_file, cacert, cert, key, output;
    bool quiet = false;
};

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return "";
    return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// The daemon and credentials from the flags and the environment.
Session connect(const Globals& g) {
    std::string where;
    if (!g.url.empty()) where = g.url;
    else if (!g.socket.empty()) where = g.socket.rfind("unix:", 0) == 0 ? g.socket : "unix:" + g.socket;
    else if (!env("SNAPVIRT_URL").empty()) where = env("SNAPVIRT_URL");
    else where = std::string("unix:") + default_socket;
    client::Url url;
    try {
        url = client::Url::parse(where);
    } catch (const std::exception& e) {
        throw Failure(Exit::usage, e.what());
    }

    client::TlsOptions tls;
    tls.ca_file = g.cacert;
    tls.cert_file = g.cert;
    tls.key_file = g.key;
    if (url.kind != client::Url::Kind::https && (!g.cacert.empty() || !g.cert.empty()))
        throw Failure(Exit::usage, "--cacert, --cert and --key apply to https:// URLs only, not to '" + where + "'.");

    // The Unix socket's permissions decide; a token is only ever sent over TCP.
    std::string token;
    if (url.kind != client::Url::Kind::unix_socket) {
        if (!g.token_file.empty()) {
            std::ifstream in(g.token_file);
            if (!in) throw Failure(Exit::usage, "Cannot read the token file '" + g.token_file + "'.");
            std::stringstream ss;
            ss << in.rdbuf();
            token = trim(ss.str());
            if (token.empty()) throw Failure(Exit::usage, "The token file '" + g.token_file + "' is empty.");
        } else {
            token = trim(env("SNAPVIRT_TOKEN"));
        }
        if (token.find_first_of(" \t\r\n") != std::string::npos)
            throw Failure(Exit::usage, "The token must be a single word without spaces or line breaks.");
    }
    return Session(url, token, tls);
}

ProgressMode progress_mode(bool quiet) {
    if (quiet) return ProgressMode::none;
    const std::string term = env("TERM");
    return ::isatty(STDERR_FILENO) && term != "dumb" ? ProgressMode::tty : ProgressMode::plain;
}

std::string command_path(const CLI::App& app) {
    std::string path = "snapvirt";
    for (const CLI::App* a = &app; !a->get_subcommands().empty();) {
        a = a->get_subcommands().front();
        path += " " + a->get_name();
    }
    return path;
}

int report(const Failure& f) {
    std::cerr << "snapvirt: " << f.what() << "\n";
    if (!f.hint().empty()) std::cerr << "hint: " << f.hint() << "\n";
    std::cerr << std::flush;
    return static_cast<int>(f.exit());
}

const char* main_footer =
    "Environment:\n"
    "  SNAPVIRT_URL     the daemon when neither --url nor --socket is given (http://, https:// or unix:PATH)\n"
    "  SNAPVIRT_TOKEN   bearer token for TCP and TLS (--token-file takes precedence; never sent on a Unix socket)\n"
    "  SNAPVIRT_OUTPUT  default for --output\n"
    "\n"
    "A SNAPSHOT argument is a snapshot ID, a unique ID prefix (at least 4 characters), INSTANCE/NAME, or a\n"
    "display name or libvirt name that is unique on the host. A SCHEDULE argument is the same with the\n"
    "schedule's name. A JOB argument is a job ID or a unique prefix.\n"
    "\n";

void examples(CLI::App* app, const std::string& text) {
    app->footer("Examples:\n" + text +
                "\nGlobal options (--url, --socket, --token-file, -o/--output, --quiet, TLS) and exit codes:\n"
                "see 'snapvirt --help'.");
}

// The deepest subcommand the command line named.
const CLI::App* chosen_command(const CLI::App& app) {
    const CLI::App* a = &app;
    while (!a->get_subcommands().empty()) a = a->get_subcommands().front();
    return a;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"snapvirt: take, list, revert and delete libvirt VM snapshots through snapvirtd.", "snapvirt"};
    app.set_version_flag("--version", std::string("snapvirt ") + SNAPVIRT_VERSION);
    app.get_formatter()->column_width(34);
    app.require_subcommand(1);
    app.fallthrough();  // global options may follow the subcommand

    Globals g;
    auto* socket_opt = app.add_option("--socket", g.socket, std::string("The daemon's Unix socket (default ") + default_socket + ")")
                           ->type_name("PATH");
    auto* url_opt = app.add_option("--url", g.url, "The daemon's URL: http://HOST:PORT, https://HOST:PORT or unix:PATH")
                        ->type_name("URL");
    socket_opt->excludes(url_opt);
    app.add_option("--token-file", g.token_file, "Read the bearer token from FILE (else $SNAPVIRT_TOKEN)")
        ->type_name("FILE");
    app.add_option("--cacert", g.cacert, "Verify the daemon's TLS certificate against this CA")->type_name("FILE");
    auto* cert_opt = app.add_option("--cert", g.cert, "Client certificate for mutual TLS")->type_name("FILE");
    app.add_option("--key", g.key, "Private key of --cert")->type_name("FILE")->needs(cert_opt);
    g.output = env("SNAPVIRT_OUTPUT").empty() ? "table" : env("SNAPVIRT_OUTPUT");
    app.add_option("-o,--output", g.output,
                   "table (default), wide (more columns, full IDs), json (the API's objects) or id (IDs only)")
        ->type_name("FORMAT")
        ->check(CLI::IsMember({"table", "wide", "json", "id"}));
    app.add_flag("--quiet", g.quiet, "No progress or summary lines on stderr (errors still)");

    std::map<const CLI::App*, std::function<Exit(const Context&)>> run;

    // ---- host --------------------------------------------------------------------------------
    auto* host = app.add_subcommand("host", "Show the host: its name, libvirt, QEMU and snapvirt versions, capabilities");
    run[host] = [](const Context& c) { return host_show(c); };
    examples(host, "  snapvirt host\n  snapvirt host -o json\n");

    // ---- instances ---------------------------------------------------------------------------
    auto* instances = app.add_subcommand("instances", "List the hypervisor's instances (libvirt domains)");
    instances->alias("instance");
    instances->require_subcommand(0, 1);
    run[instances] = [](const Context& c) { return instances_list(c); };
    auto* instances_ls = instances->add_subcommand("list", "List every instance (the default)");
    instances_ls->alias("ls");
    run[instances_ls] = [](const Context& c) { return instances_list(c); };
    std::string instance_name;
    auto* instances_sh = instances->add_subcommand("show", "Show one instance and its snapshot tree");
    instances_sh->add_option("INSTANCE", instance_name, "The instance's name or UUID")->required();
    run[instances_sh] = [&](const Context& c) { return instances_show(c, instance_name); };
    examples(instances, "  snapvirt instances\n  snapvirt instances show web1\n");

    // ---- snapshots ---------------------------------------------------------------------------
    auto* snapshots = app.add_subcommand("snapshots", "Take, list, show, revert, edit and delete snapshots");
    snapshots->alias("snapshot");
    snapshots->require_subcommand(1);
    examples(snapshots,
             "  snapvirt snapshots create web1 --mode memory --name before-upgrade\n"
             "  snapvirt snapshots list web1\n"
             "  snapvirt snapshots revert web1/before-upgrade\n"
             "  snapvirt snapshots delete web1/before-upgrade --yes\n");

    ListArgs snap_list;
    auto* s_list = snapshots->add_subcommand("list", "List snapshots: an instance's tree, or every snapshot on the host");
    s_list->alias("ls");
    s_list->add_option("INSTANCE", snap_list.instance, "Only this instance's snapshots, parents before children");
    s_list->add_option("--state", snap_list.state, "Only snapshots in this state")
        ->check(CLI::IsMember({"creating", "ready", "reverting", "deleting", "error", "missing"}));
    s_list->add_option("--mode", snap_list.mode, "Only snapshots of this mode")->check(CLI::IsMember({"memory", "stopped", "other"}));
    s_list->add_option("-q,--query", snap_list.query, "Only snapshots whose display name or description contains TEXT")
        ->type_name("TEXT");
    s_list->add_option("--limit", snap_list.limit, "Page size of the host-wide list (1-1000, default 100)")->check(CLI::Range(1, 1000));
    s_list->add_option("--cursor", snap_list.cursor, "Continue the host-wide list from this page cursor");
    s_list->add_flag("--all", snap_list.all, "Every page of the host-wide list");
    run[s_list] = [&](const Context& c) { return snapshots_list(c, snap_list); };
    examples(s_list,
             "  snapvirt snapshots list                      # newest first, every instance\n"
             "  snapvirt snapshots list web1                 # web1's tree\n"
             "  snapvirt snapshots list --state error --all -o json\n");

    std::string show_ref;
    auto* s_show = snapshots->add_subcommand("show", "Show one snapshot");
    s_show->add_option("SNAPSHOT", show_ref, "ID, ID prefix, INSTANCE/NAME or unique name")->required();
    run[s_show] = [&](const Context& c) { return snapshots_show(c, show_ref); };
    examples(s_show, "  snapvirt snapshots show web1/before-upgrade\n  snapvirt snapshots show 3f2a9c1e -o json\n");

    CreateArgs create;
    std::string create_name, create_display, create_description;
    auto* s_create = snapshots->add_subcommand("create", "Take a snapshot of an instance and wait for it");
    s_create->add_option("INSTANCE", create.instance, "The instance's name or UUID")->required();
    s_create->add_option("--mode", create.mode,
                         "memory (disks and RAM of a running guest, which keeps running) or "
                         "stopped (disks only, taken while the guest is shut down)")
        ->required()
        ->check(CLI::IsMember({"memory", "stopped"}));
    s_create->add_option("--method", create.method,
                         "auto (default: the instance's method; with none, internal where it can cover the instance, "
                         "else external), internal (inside the qcow2 disks) or external (an overlay per disk and a "
                         "memory file: raw image files, UEFI guests; libvirt 9.7 or newer)")
        ->check(CLI::IsMember({"auto", "internal", "external"}));
    auto* o_name = s_create->add_option("--name", create_name, "libvirt snapshot name (default INSTANCE-YYYYMMDD-HHMMSS)")->type_name("NAME");
    auto* o_display = s_create->add_option("--display-name", create_display, "Display name (default the name)")->type_name("TEXT");
    auto* o_desc = s_create->add_option("--description", create_description, "Description")->type_name("TEXT");
    s_create->add_flag("--force-stop", create.force_stop, "stopped: destroy the guest if it ignores the ACPI shutdown");
    s_create->add_flag("--keep-stopped", create.keep_stopped, "stopped: leave the guest off afterwards");
    s_create->add_option("--shutdown-timeout", create.shutdown_timeout_s, "stopped: seconds to wait for the guest to shut down")
        ->type_name("SECONDS")
        ->check(CLI::Range(1, 86400));
    s_create->add_option("--idempotency-key", create.idempotency_key,
                         "Idempotency-Key for the request (default: a new random key; repeat a key to retry safely)")
        ->type_name("KEY");
    s_create->add_flag("--no-wait", create.wait.no_wait, "Return once the daemon accepted the job");
    s_create->add_option("--timeout", create.wait.timeout_s, "Stop waiting after SECONDS (exit 9; the job goes on)")
        ->type_name("SECONDS")
        ->check(CLI::Range(1, 604800));
    run[s_create] = [&](const Context& c) {
        if (o_name->count()) create.name = create_name;
        if (o_display->count()) create.display_name = create_display;
        if (o_desc->count()) create.description = create_description;
        return snapshots_create(c, create);
    };
    examples(s_create,
             "  snapvirt snapshots create web1 --mode memory --name before-upgrade --description 'kernel 6.1'\n"
             "  snapvirt snapshots create db1 --mode stopped --shutdown-timeout 120 --force-stop\n"
             "  snapvirt snapshots create win11 --mode memory --method external\n"
             "  id=$(snapvirt snapshots create web1 --mode memory -o id)\n");

    RevertArgs revert;
    auto* s_revert = snapshots->add_subcommand("revert", "Revert an instance to a snapshot (asks first on a terminal)");
    s_revert->add_option("SNAPSHOT", revert.snapshot, "ID, ID prefix, INSTANCE/NAME or unique name")->required();
    s_revert->add_option("--start", revert.start,
                         "auto (default: as the snapshot was taken; stopped snapshots come back off), running, paused or stopped")
        ->check(CLI::IsMember({"auto", "running", "paused", "stopped"}));
    s_revert->add_flag("--force", revert.force, "Revert even where libvirt asks for force (e.g. a changed CPU definition)");
    s_revert->add_flag("-y,--yes", revert.yes, "Do not ask for confirmation (required without a terminal)");
    s_revert->add_flag("--no-wait", revert.wait.no_wait, "Return once the daemon accepted the job");
    s_revert->add_option("--timeout", revert.wait.timeout_s, "Stop waiting after SECONDS (exit 9; the job goes on)")
        ->type_name("SECONDS")
        ->check(CLI::Range(1, 604800));
    run[s_revert] = [&](const Context& c) { return snapshots_revert(c, revert); };
    examples(s_revert, "  snapvirt snapshots revert web1/before-upgrade\n  snapvirt snapshots revert 3f2a9c1e --yes --start paused\n");

    EditArgs edit;
    std::string edit_display, edit_description;
    auto* s_edit = snapshots->add_subcommand("edit", "Change a snapshot's display name or description");
    s_edit->add_option("SNAPSHOT", edit.snapshot, "ID, ID prefix, INSTANCE/NAME or unique name")->required();
    auto* e_display = s_edit->add_option("--display-name", edit_display, "New display name (unique per instance)")->type_name("TEXT");
    auto* e_desc = s_edit->add_option("--description", edit_description, "New description ('' clears it)")->type_name("TEXT");
    run[s_edit] = [&](const Context& c) {
        if (e_display->count()) edit.display_name = edit_display;
        if (e_desc->count()) edit.description = edit_description;
        return snapshots_edit(c, edit);
    };
    examples(s_edit, "  snapvirt snapshots edit web1/before-upgrade --display-name 'before 6.1' --description ''\n");

    DeleteArgs del;
    auto* s_delete = snapshots->add_subcommand("delete", "Delete a snapshot (asks first on a terminal)");
    s_delete->alias("rm");
    s_delete->add_option("SNAPSHOT", del.snapshot, "ID, ID prefix, INSTANCE/NAME or unique name")->required();
    s_delete->add_flag("--children", del.children, "Also delete every snapshot below it (else its children move up)");
    s_delete->add_flag("-y,--yes", del.yes, "Do not ask for confirmation (required without a terminal)");
    s_delete->add_flag("--no-wait", del.wait.no_wait, "Return once the daemon accepted the job");
    s_delete->add_option("--timeout", del.wait.timeout_s, "Stop waiting after SECONDS (exit 9; the job goes on)")
        ->type_name("SECONDS")
        ->check(CLI::Range(1, 604800));
    run[s_delete] = [&](const Context& c) { return snapshots_delete(c, del); };
    examples(s_delete, "  snapvirt snapshots delete web1/before-upgrade\n  snapvirt snapshots delete 3f2a9c1e --children --yes\n");

    // ---- schedules ---------------------------------------------------------------------------
    auto* schedules = app.add_subcommand("schedules", "Snapshots on a rhythm: list, show, create, edit and delete schedules");
    schedules->alias("schedule");
    schedules->require_subcommand(1);
    examples(schedules,
             "  snapvirt schedules create web1 --cron '0 2 * * *' --mode memory --keep-last 7\n"
             "  snapvirt schedules list web1\n"
             "  snapvirt schedules edit web1/daily-0200 --disable\n"
             "  snapvirt schedules delete web1/daily-0200 --yes\n");

    ListArgs sched_list;
    auto* c_list = schedules->add_subcommand("list", "List schedules: an instance's, or every one on the host");
    c_list->alias("ls");
    c_list->add_option("INSTANCE", sched_list.instance, "Only this instance's schedules (name or UUID)");
    c_list->add_option("--limit", sched_list.limit, "Page size of the host-wide list (1-1000, default 100)")->check(CLI::Range(1, 1000));
    c_list->add_option("--cursor", sched_list.cursor, "Continue the host-wide list from this page cursor");
    c_list->add_flag("--all", sched_list.all, "Every page of the host-wide list");
    run[c_list] = [&](const Context& c) { return schedules_list(c, sched_list); };
    examples(c_list, "  snapvirt schedules list\n  snapvirt schedules list web1 -o json\n");

    std::string schedule_ref;
    const char* schedule_ref_help = "ID, ID prefix, INSTANCE/NAME or unique name";
    auto* c_show = schedules->add_subcommand("show", "Show one schedule, its next run and its last run");
    c_show->add_option("SCHEDULE", schedule_ref, schedule_ref_help)->required();
    run[c_show] = [&](const Context& c) { return schedules_show(c, schedule_ref); };
    examples(c_show, "  snapvirt schedules show web1/daily-0200\n");

    // The options create and edit share; `edit` adds the ways to clear and to switch off.
    struct ScheduleOptions {
        std::string name, cron, timezone, mode, template_, max_age;
        unsigned keep_last = 0, jitter_s = 0, shutdown_timeout_s = 0;
        bool force_stop = false, keep_stopped = false;
        CLI::Option *o_name, *o_cron, *o_timezone, *o_mode, *o_template, *o_max_age, *o_keep_last, *o_jitter, *o_timeout,
            *o_force, *o_keep;
    };
    const auto schedule_options = [](CLI::App* cmd, ScheduleOptions& o, bool create) {
        o.o_name = cmd->add_option("--name", o.name,
                                   create ? "The schedule's name, unique per instance (default from the cron expression: "
                                            "daily-0200 for '0 2 * * *')"
                                          : "A new name, unique per instance")
                       ->type_name("NAME");
        o.o_cron = cmd->add_option("--cron", o.cron,
                                   "When: 'minute hour day-of-month month day-of-week' (0 2 * * *), with an optional "
                                   "leading seconds field, or @hourly, @daily, @weekly, @monthly, @yearly")
                       ->type_name("EXPR");
        o.o_timezone = cmd->add_option("--timezone", o.timezone, "IANA time zone the cron fields are read in (default UTC)")->type_name("ZONE");
        o.o_mode = cmd->add_option("--mode", o.mode, "memory (disks and RAM, the guest keeps running) or stopped (disks, guest shut down)")
                       ->check(CLI::IsMember({to_string(SnapshotMode::memory), to_string(SnapshotMode::stopped)}));
        o.o_keep_last = cmd->add_option("--keep-last", o.keep_last, "Keep the newest N of the schedule's snapshots")
                            ->type_name("N")
                            ->check(CLI::Range(1, 1000000));
        o.o_max_age = cmd->add_option("--max-age", o.max_age, "Delete the schedule's snapshots older than AGE: 90m, 12h, 7d, 4w")
                          ->type_name("AGE");
        o.o_template = cmd->add_option("--display-name-template", o.template_,
                                       "Display names of its snapshots: {schedule} {instance} {date} {time} {datetime} "
                                       "(default '{schedule} {datetime}')")
                           ->type_name("TEMPLATE");
        o.o_jitter = cmd->add_option("--jitter", o.jitter_s, "Start each run up to SECONDS after its time (0-3600, default 0)")
                         ->type_name("SECONDS")
                         ->check(CLI::Range(0, 3600));
        o.o_timeout = cmd->add_option("--shutdown-timeout", o.shutdown_timeout_s, "stopped: seconds to wait for the guest to shut down")
                          ->type_name("SECONDS")
                          ->check(CLI::Range(1, 86400));
        o.o_force = cmd->add_flag(create ? "--force-stop" : "--force-stop,!--no-force-stop", o.force_stop,
                                  "stopped: destroy the guest if it ignores the ACPI shutdown");
        o.o_keep = cmd->add_flag(create ? "--keep-stopped" : "--keep-stopped,!--no-keep-stopped", o.keep_stopped,
                                 "stopped: leave the guest off afterwards");
    };
    const auto to_args = [](const ScheduleOptions& o, ScheduleArgs& a) {
        if (o.o_name->count()) a.name = o.name;
        if (o.o_cron->count()) a.cron = o.cron;
        if (o.o_timezone->count()) a.timezone = o.timezone;
        if (o.o_mode->count()) a.mode = o.mode;
        if (o.o_keep_last->count()) a.keep_last = o.keep_last;
        if (o.o_max_age->count()) a.max_age = o.max_age;
        if (o.o_template->count()) a.display_name_template = o.template_;
        if (o.o_jitter->count()) a.jitter_s = o.jitter_s;
        if (o.o_timeout->count()) a.shutdown_timeout_s = o.shutdown_timeout_s;
        if (o.o_force->count()) a.force_stop = o.force_stop;
        if (o.o_keep->count()) a.keep_stopped = o.keep_stopped;
    };

    ScheduleArgs sched_create;
    ScheduleOptions create_opts;
    bool create_disabled = false;
    auto* c_create = schedules->add_subcommand("create", "Make a schedule: snapshots of an instance on a rhythm, old ones deleted");
    c_create->add_option("INSTANCE", sched_create.instance, "The instance's name or UUID")->required();
    schedule_options(c_create, create_opts, true);
    create_opts.o_cron->required();
    create_opts.o_mode->required();
    c_create->add_flag("--disabled", create_disabled, "Make it disabled: it does not run until enabled");
    run[c_create] = [&](const Context& c) {
        to_args(create_opts, sched_create);
        if (create_disabled) sched_create.enabled = false;
        return schedules_create(c, sched_create);
    };
    examples(c_create,
             "  snapvirt schedules create web1 --cron '0 2 * * *' --mode memory --keep-last 7\n"
             "  snapvirt schedules create db1 --name hourly --cron @hourly --mode stopped --force-stop --max-age 2d\n"
             "  snapvirt schedules create web1 --name office --cron '0 8-18 * * mon-fri' --timezone Europe/Berlin \\\n"
             "      --mode memory --keep-last 10 --display-name-template '{schedule} {time}'\n");

    ScheduleArgs sched_edit;
    ScheduleOptions edit_opts;
    auto* c_edit = schedules->add_subcommand("edit", "Change a schedule; only the options given change");
    c_edit->add_option("SCHEDULE", sched_edit.ref, schedule_ref_help)->required();
    schedule_options(c_edit, edit_opts, false);
    auto* e_enable = c_edit->add_flag("--enable")->description("Let it run again");
    auto* e_disable = c_edit->add_flag("--disable")->description("Stop it running; it keeps its snapshots");
    e_enable->excludes(e_disable);
    auto* e_no_keep = c_edit->add_flag("--no-keep-last", sched_edit.clear_keep_last, "Remove the keep-last limit");
    auto* e_no_age = c_edit->add_flag("--no-max-age", sched_edit.clear_max_age, "Remove the max-age limit");
    auto* e_no_template = c_edit->add_flag("--no-display-name-template", sched_edit.clear_template, "Back to the default display names");
    e_no_keep->excludes(edit_opts.o_keep_last);
    e_no_age->excludes(edit_opts.o_max_age);
    e_no_template->excludes(edit_opts.o_template);
    run[c_edit] = [&, e_enable, e_disable](const Context& c) {
        to_args(edit_opts, sched_edit);
        if (e_enable->count()) sched_edit.enabled = true;
        if (e_disable->count()) sched_edit.enabled = false;
        return schedules_edit(c, sched_edit);
    };
    examples(c_edit,
             "  snapvirt schedules edit web1/daily-0200 --cron '30 3 * * *' --keep-last 10\n"
             "  snapvirt schedules edit web1/daily-0200 --disable\n"
             "  snapvirt schedules edit 3f2a9c1e --max-age 30d --no-keep-last\n");

    ScheduleDeleteArgs sched_delete;
    auto* c_delete = schedules->add_subcommand("delete", "Delete a schedule (asks first on a terminal); its snapshots stay unless --snapshots");
    c_delete->alias("rm");
    c_delete->add_option("SCHEDULE", sched_delete.ref, schedule_ref_help)->required();
    c_delete->add_flag("--snapshots", sched_delete.snapshots, "Also delete the snapshots it took (else they become ordinary ones)");
    c_delete->add_flag("-y,--yes", sched_delete.yes, "Do not ask for confirmation (required without a terminal)");
    run[c_delete] = [&](const Context& c) { return schedules_delete(c, sched_delete); };
    examples(c_delete, "  snapvirt schedules delete web1/daily-0200\n  snapvirt schedules delete 3f2a9c1e --snapshots --yes\n");

    // ---- jobs --------------------------------------------------------------------------------
    auto* jobs = app.add_subcommand("jobs", "List, show, wait for and cancel the daemon's jobs");
    jobs->alias("job");
    jobs->require_subcommand(1);
    examples(jobs, "  snapvirt jobs list --instance web1 --state failed\n  snapvirt jobs wait 3f2a9c1e --timeout 600\n");

    ListArgs job_list;
    auto* j_list = jobs->add_subcommand("list", "List jobs, newest first");
    j_list->alias("ls");
    j_list->add_option("--instance", job_list.instance, "Only this instance's jobs (name or UUID)");
    j_list->add_option("--kind", job_list.kind, "Only jobs of this kind")->check(CLI::IsMember({"create", "revert", "delete"}));
    j_list->add_option("--state", job_list.state, "Only jobs in this state")
        ->check(CLI::IsMember({"queued", "running", "succeeded", "failed", "cancelled"}));
    j_list->add_option("--limit", job_list.limit, "Page size (1-1000, default 100)")->check(CLI::Range(1, 1000));
    j_list->add_option("--cursor", job_list.cursor, "Continue from this page cursor");
    j_list->add_flag("--all", job_list.all, "Every page");
    run[j_list] = [&](const Context& c) { return jobs_list(c, job_list); };
    examples(j_list, "  snapvirt jobs list\n  snapvirt jobs list --state running -o json\n");

    std::string job_ref;
    auto* j_show = jobs->add_subcommand("show", "Show one job");
    j_show->add_option("JOB", job_ref, "Job ID or unique ID prefix")->required();
    run[j_show] = [&](const Context& c) { return jobs_show(c, job_ref); };
    examples(j_show, "  snapvirt jobs show 3f2a9c1e\n");

    unsigned wait_timeout = 0;
    auto* j_wait = jobs->add_subcommand("wait", "Wait for a job to end; exit 0 if it succeeded, 1 if it failed or was cancelled");
    j_wait->add_option("JOB", job_ref, "Job ID or unique ID prefix")->required();
    j_wait->add_option("--timeout", wait_timeout, "Stop waiting after SECONDS (exit 9; the job goes on)")
        ->type_name("SECONDS")
        ->check(CLI::Range(1, 604800));
    run[j_wait] = [&](const Context& c) { return jobs_wait(c, job_ref, wait_timeout); };
    examples(j_wait, "  snapvirt jobs wait 3f2a9c1e --timeout 300 && echo done\n");

    auto* j_cancel = jobs->add_subcommand("cancel", "Cancel a queued job, or a stopped-mode job still waiting for the shutdown");
    j_cancel->add_option("JOB", job_ref, "Job ID or unique ID prefix")->required();
    run[j_cancel] = [&](const Context& c) { return jobs_cancel(c, job_ref); };
    examples(j_cancel, "  snapvirt jobs cancel 3f2a9c1e\n");

    app.footer(std::string(main_footer) + exit_code_help() + "\nSee 'snapvirt COMMAND --help' and docs/cli.md.");

    try {
        app.parse(argc, argv);
    } catch (const CLI::Success& e) {
        return app.exit(e);  // --help, --version
    } catch (const CLI::ParseError& e) {
        std::string message = e.what();
        const CLI::App* at = chosen_command(app);
        if (message == "A subcommand is required") {
            message = "Name a command:";
            const auto subs = at->get_subcommands({});
            for (std::size_t i = 0; i < subs.size(); ++i) message += (i ? ", " : " ") + subs[i]->get_name();
            message += ".";
        }
        std::cerr << "snapvirt: " << message << "\nRun '" << command_path(app) << " --help' for usage." << std::endl;
        return static_cast<int>(Exit::usage);
    }

    const auto command = run.find(chosen_command(app));
    if (command == run.end()) {
        std::cerr << "snapvirt: Name a command.\nRun '" << command_path(app) << " --help' for usage." << std::endl;
        return static_cast<int>(Exit::usage);
    }

    try {
        const Format format = parse_format(g.output);
        const Session session = connect(g);
        const Context ctx{session, format, progress_mode(g.quiet)};
        return static_cast<int>(command->second(ctx));
    } catch (const Failure& f) {
        return report(f);
    } catch (const client::TransportError& e) {
        return report(Failure(Exit::unavailable, e.what()));
    } catch (const nlohmann::json::exception& e) {
        return report(Failure(Exit::internal, std::string("The daemon's answer did not have the expected shape: ") + e.what()));
    } catch (const std::exception& e) {
        return report(Failure(Exit::internal, e.what()));
    }
}
