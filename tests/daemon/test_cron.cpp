// Cron expressions and time zones (daemon/schedule/cron.hpp): every syntax form, errors that name
// the wrong part, the next and the last slot across month, year and leap days, and the DST rules
// of docs/api.md (a local time that does not exist is skipped; one that occurs twice runs once, at
// its first occurrence) in zones with whole-hour and half-hour offsets.

#include "daemon/schedule/cron.hpp"

#include "tests/support/catch.hpp"

#include <chrono>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

using namespace snapvirt;
using namespace snapvirt::daemon::schedule;

namespace {

// Days since 1970-01-01 of a civil date, and back (H. Hinnant's algorithms), so the expected
// times below are written as readable UTC instants.
std::int64_t days_from_civil(int y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = unsigned(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + std::int64_t(doe) - 719468;
}

// "2026-10-25T00:30:00Z" → Unix ms.
TimeMs utc(const std::string& iso) {
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
    REQUIRE(std::sscanf(iso.c_str(), "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &s) == 6);
    return (days_from_civil(y, unsigned(mo), unsigned(d)) * 86400 + h * 3600 + mi * 60 + s) * 1000;
}

// Unix ms → "2026-10-25T00:30:00Z" (with ".250" when not a whole second).
std::string iso(TimeMs t) {
    std::int64_t secs = t >= 0 ? t / 1000 : -((-t + 999) / 1000);
    const std::int64_t ms = t - secs * 1000;
    std::int64_t z = (secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400));
    const std::int64_t sod = secs - z * 86400;
    z += 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = unsigned(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    const std::int64_t y = std::int64_t(yoe) + era * 400 + (m <= 2);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lldZ", static_cast<long long>(y), m, d,
                  static_cast<long long>(sod / 3600), static_cast<long long>(sod / 60 % 60),
                  static_cast<long long>(sod % 60));
    std::string out = buf;
    if (ms != 0)
        out.insert(out.size() - 1, "." + std::to_string(ms));
    return out;
}

// The next `n` slots after `from`, as ISO strings.
std::vector<std::string> slots(const std::string& expression, const std::string& zone, const std::string& from,
                               int n) {
    const Cron cron = Cron::parse(expression);
    const TimeZone tz = TimeZone::locate(zone);
    std::vector<std::string> out;
    TimeMs t = utc(from);
    for (int i = 0; i < n; ++i) {
        const std::optional<TimeMs> next = cron.next_after(t, tz);
        if (!next) {
            out.push_back("none");
            break;
        }
        out.push_back(iso(*next));
        t = *next;
    }
    return out;
}

using V = std::vector<std::string>;

// The part a parse error names, or "ok".
std::string error_part(const std::string& expression) {
    try {
        Cron::parse(expression);
        return "ok";
    } catch (const CronError& e) {
        return e.part();
    }
}

std::string error_message(const std::string& expression) {
    try {
        Cron::parse(expression);
        return "ok";
    } catch (const CronError& e) {
        return e.what();
    }
}

std::string last(const std::string& expression, const std::string& zone, const std::string& at,
                 const std::string& not_before) {
    const std::optional<TimeMs> t =
        Cron::parse(expression).last_at_or_before(utc(at), utc(not_before), TimeZone::locate(zone));
    return t ? iso(*t) : "none";
}

}  // namespace

TEST_CASE("Cron: numbers, lists, ranges and steps", "[cron]") {
    CHECK(slots("0 2 * * *", "UTC", "2026-11-27T12:00:00Z", 2) == V{"2026-11-28T02:00:00Z", "2026-11-29T02:00:00Z"});
    CHECK(slots("*/15 * * * *", "UTC", "2026-11-27T00:00:00Z", 4) ==
          V{"2026-11-27T00:15:00Z", "2026-11-27T00:30:00Z", "2026-11-27T00:45:00Z", "2026-11-27T01:00:00Z"});
    CHECK(slots("0-30/10 * * * *", "UTC", "2026-11-27T00:00:00Z", 4) ==
          V{"2026-11-27T00:10:00Z", "2026-11-27T00:20:00Z", "2026-11-27T00:30:00Z", "2026-11-27T01:00:00Z"});
    // "5/15": from 5 every 15 to the end of the field
    CHECK(slots("5/15 * * * *", "UTC", "2026-11-27T00:00:00Z", 5) ==
          V{"2026-11-27T00:05:00Z", "2026-11-27T00:20:00Z", "2026-11-27T00:35:00Z", "2026-11-27T00:50:00Z",
            "2026-11-27T01:05:00Z"});
    CHECK(slots("1,15 * * * *", "UTC", "2026-11-27T00:00:00Z", 3) ==
          V{"2026-11-27T00:01:00Z", "2026-11-27T00:15:00Z", "2026-11-27T01:01:00Z"});
    CHECK(slots("0 1-3 * * *", "UTC", "2026-11-27T00:00:00Z", 4) ==
          V{"2026-11-27T01:00:00Z", "2026-11-27T02:00:00Z", "2026-11-27T03:00:00Z", "2026-11-28T01:00:00Z"});
    CHECK(slots("0 22-23,1 * * *", "UTC", "2026-11-27T12:00:00Z", 4) ==
          V{"2026-11-27T22:00:00Z", "2026-11-27T23:00:00Z", "2026-11-28T01:00:00Z", "2026-11-28T22:00:00Z"});
    CHECK(slots("0 0 1,15 * *", "UTC", "2026-11-27T00:00:00Z", 3) ==
          V{"2026-12-01T00:00:00Z", "2026-12-15T00:00:00Z", "2027-01-01T00:00:00Z"});
    CHECK(slots("0 0 1 */4 *", "UTC", "2026-11-27T00:00:00Z", 3) ==
          V{"2027-01-01T00:00:00Z", "2027-05-01T00:00:00Z", "2027-09-01T00:00:00Z"});
    // Whitespace around and between the fields does not matter; text() keeps the expression.
    CHECK(slots("  0\t2  * * *  ", "UTC", "2026-11-27T12:00:00Z", 1) == V{"2026-11-28T02:00:00Z"});
    CHECK(Cron::parse(" 0 2 * * * ").text() == "0 2 * * *");
}

TEST_CASE("Cron: month and weekday names in any case, 0 and 7 both Sunday", "[cron]") {
    CHECK(slots("0 0 1 jan,JUL *", "UTC", "2026-11-27T00:00:00Z", 2) ==
          V{"2027-01-01T00:00:00Z", "2027-07-01T00:00:00Z"});
    CHECK(slots("0 0 1 Mar-may *", "UTC", "2026-11-27T00:00:00Z", 4) ==
          V{"2027-03-01T00:00:00Z", "2027-04-01T00:00:00Z", "2027-05-01T00:00:00Z", "2028-03-01T00:00:00Z"});
    // 2026-11-27 is a Friday.
    CHECK(slots("0 9 * * MON-fri", "UTC", "2026-11-27T10:00:00Z", 2) ==
          V{"2026-11-30T09:00:00Z", "2026-12-01T09:00:00Z"});
    CHECK(slots("0 0 * * sun", "UTC", "2026-11-27T00:00:00Z", 1) == V{"2026-11-29T00:00:00Z"});
    CHECK(slots("0 0 * * 0", "UTC", "2026-11-27T00:00:00Z", 2) == V{"2026-11-29T00:00:00Z", "2026-12-06T00:00:00Z"});
    CHECK(slots("0 0 * * 7", "UTC", "2026-11-27T00:00:00Z", 2) == V{"2026-11-29T00:00:00Z", "2026-12-06T00:00:00Z"});
    CHECK(slots("0 0 * * 5-7", "UTC", "2026-11-26T12:00:00Z", 4) ==
          V{"2026-11-27T00:00:00Z", "2026-11-28T00:00:00Z", "2026-11-29T00:00:00Z", "2026-12-04T00:00:00Z"});
    CHECK(slots("0 0 * * Sat,sUn", "UTC", "2026-11-27T00:00:00Z", 3) ==
          V{"2026-11-28T00:00:00Z", "2026-11-29T00:00:00Z", "2026-12-05T00:00:00Z"});
    // A weekday step runs over 0-6: "*/2" is Sunday, Tuesday, Thursday, Saturday.
    CHECK(slots("0 0 * * */2", "UTC", "2026-11-27T00:00:00Z", 4) ==
          V{"2026-11-28T00:00:00Z", "2026-11-29T00:00:00Z", "2026-12-01T00:00:00Z", "2026-12-03T00:00:00Z"});
}

TEST_CASE("Cron: when both day fields are restricted, a day matching either runs (Vixie cron)", "[cron]") {
    // The 13th, or a Friday.
    CHECK(slots("0 0 13 * fri", "UTC", "2026-11-01T00:00:00Z", 7) ==
          V{"2026-11-06T00:00:00Z", "2026-11-13T00:00:00Z", "2026-11-20T00:00:00Z", "2026-11-27T00:00:00Z",
            "2026-12-04T00:00:00Z", "2026-12-11T00:00:00Z", "2026-12-13T00:00:00Z"});
    // Only one restricted: it alone decides.
    CHECK(slots("0 0 * * fri", "UTC", "2026-11-01T00:00:00Z", 2) == V{"2026-11-06T00:00:00Z", "2026-11-13T00:00:00Z"});
    CHECK(slots("0 0 13 * *", "UTC", "2026-11-01T00:00:00Z", 2) == V{"2026-11-13T00:00:00Z", "2026-12-13T00:00:00Z"});
    // A day field starting with '*' does not restrict (as in Vixie cron): odd days that are Fridays.
    CHECK(slots("0 0 */2 * fri", "UTC", "2026-11-01T00:00:00Z", 3) ==
          V{"2026-11-13T00:00:00Z", "2026-11-27T00:00:00Z", "2026-12-11T00:00:00Z"});
    // With the OR rule, a day that no month has does not make the expression never match.
    CHECK(slots("0 0 31 2 mon", "UTC", "2026-11-27T00:00:00Z", 2) == V{"2027-02-01T00:00:00Z", "2027-02-08T00:00:00Z"});
}

TEST_CASE("Cron: @words", "[cron]") {
    const std::string from = "2026-11-27T10:20:30Z";  // a Friday
    CHECK(slots("@hourly", "UTC", from, 2) == V{"2026-11-27T11:00:00Z", "2026-11-27T12:00:00Z"});
    CHECK(slots("@daily", "UTC", from, 2) == V{"2026-11-28T00:00:00Z", "2026-11-29T00:00:00Z"});
    CHECK(slots("@midnight", "UTC", from, 1) == V{"2026-11-28T00:00:00Z"});
    CHECK(slots("@weekly", "UTC", from, 2) == V{"2026-11-29T00:00:00Z", "2026-12-06T00:00:00Z"});
    CHECK(slots("@monthly", "UTC", from, 2) == V{"2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"});
    CHECK(slots("@yearly", "UTC", from, 2) == V{"2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"});
    CHECK(slots("@annually", "UTC", from, 1) == V{"2027-01-01T00:00:00Z"});
    CHECK(slots("@DAILY", "UTC", from, 1) == V{"2026-11-28T00:00:00Z"});
    CHECK(Cron::parse("@daily").text() == "@daily");
    CHECK(error_part("@reboot") == "expression");
    CHECK(error_part("@every") == "expression");
    CHECK(error_part("@daily 0") == "expression");
}

TEST_CASE("Cron: six fields have a leading seconds field", "[cron]") {
    CHECK(slots("*/20 * * * * *", "UTC", "2026-11-27T10:00:05Z", 4) ==
          V{"2026-11-27T10:00:20Z", "2026-11-27T10:00:40Z", "2026-11-27T10:01:00Z", "2026-11-27T10:01:20Z"});
    CHECK(slots("30 0 0 * * *", "UTC", "2026-11-27T10:00:00Z", 2) == V{"2026-11-28T00:00:30Z", "2026-11-29T00:00:30Z"});
    CHECK(slots("15,45 30 2 * * *", "UTC", "2026-11-27T02:30:15Z", 2) ==
          V{"2026-11-27T02:30:45Z", "2026-11-28T02:30:15Z"});
    // Five fields: whole minutes, strictly after a time within the minute.
    CHECK(slots("* * * * *", "UTC", "2026-11-27T10:00:00Z", 1) == V{"2026-11-27T10:01:00Z"});
    CHECK(iso(*Cron::parse("* * * * *").next_after(utc("2026-11-27T10:00:59Z") + 999, TimeZone::locate("UTC"))) ==
          "2026-11-27T10:01:00Z");
    CHECK(iso(*Cron::parse("* * * * * *").next_after(utc("2026-11-27T10:00:00Z") + 1, TimeZone::locate("UTC"))) ==
          "2026-11-27T10:00:01Z");
}

TEST_CASE("Cron: errors name the part that is wrong", "[cron]") {
    CHECK(error_message("0 25 * * *") == "cron: the hour field '25' is out of range 0-23.");
    CHECK(error_message("0 1,25 * * *") == "cron: the hour field '1,25' has 25, out of range 0-23.");
    CHECK(error_part("60 * * * * *") == "second");
    CHECK(error_part("x * * * * *") == "second");
    CHECK(error_part("60 * * * *") == "minute");
    CHECK(error_part("jan * * * *") == "minute");
    CHECK(error_part("*/0 * * * *") == "minute");
    CHECK(error_part("*/x * * * *") == "minute");
    CHECK(error_part("1/ * * * *") == "minute");
    CHECK(error_part("1,,2 * * * *") == "minute");
    CHECK(error_part("1, * * * *") == "minute");
    CHECK(error_part("-5 * * * *") == "minute");
    CHECK(error_part("99999999999 * * * *") == "minute");
    CHECK(error_part("0 24 * * *") == "hour");
    CHECK(error_part("0 5-2 * * *") == "hour");
    CHECK(error_part("0 1- * * *") == "hour");
    CHECK(error_part("0 0 0 * *") == "day_of_month");
    CHECK(error_part("0 0 32 * *") == "day_of_month");
    CHECK(error_part("0 0 L * *") == "day_of_month");
    CHECK(error_part("0 0 1 0 *") == "month");
    CHECK(error_part("0 0 1 13 *") == "month");
    CHECK(error_part("0 0 1 foo *") == "month");
    CHECK(error_part("0 0 1 january *") == "month");
    CHECK(error_part("0 0 * * 8") == "day_of_week");
    CHECK(error_part("0 0 * * mo") == "day_of_week");
    CHECK(error_part("0 0 * * fri-mon") == "day_of_week");
    CHECK(error_part("") == "expression");
    CHECK(error_part("   ") == "expression");
    CHECK(error_part("* * * *") == "expression");
    CHECK(error_part("* * * * * * *") == "expression");
    // The messages are sentences that quote what was written.
    CHECK_THAT(error_message("0 0 1 foo *"), Catch::Contains("month field 'foo'") && Catch::Contains("jan-dec"));
    CHECK_THAT(error_message("0 0 * * mo"), Catch::Contains("day-of-week field 'mo'") && Catch::Contains("sun-sat"));
    CHECK_THAT(error_message("*/0 * * * *"), Catch::Contains("minute field '*/0'") && Catch::Contains("step"));
    CHECK_THAT(error_message("0 5-2 * * *"), Catch::Contains("'5-2'") && Catch::Contains("ends before it starts"));
    CHECK_THAT(error_message("* * * *"), Catch::Contains("has 4 fields"));
    CHECK_THAT(error_message("@reboot"), Catch::Contains("'@reboot'") && Catch::Contains("@hourly"));
}

TEST_CASE("Cron: an expression that never matches is refused", "[cron]") {
    CHECK(error_part("0 0 30 2 *") == "expression");
    CHECK(error_part("0 0 31 4,6 *") == "expression");
    CHECK(error_part("0 0 31 2,4,6,9,11 *") == "expression");
    CHECK(error_part("0 0 30,31 feb *") == "expression");
    CHECK(error_part("0 0 31 4 */2") == "expression");
    CHECK_THAT(error_message("0 0 30 2 *"), Catch::Contains("never matches"));
    // Possible, if rarely.
    CHECK(error_part("0 0 29 2 *") == "ok");
    CHECK(error_part("0 0 31 4,5 *") == "ok");
    CHECK(error_part("0 0 30 2 1") == "ok");  // Mondays in February (OR rule)
}

TEST_CASE("Cron: next_after across month and year ends and leap days", "[cron]") {
    CHECK(slots("0 0 31 * *", "UTC", "2026-11-27T00:00:00Z", 4) ==
          V{"2026-12-31T00:00:00Z", "2027-01-31T00:00:00Z", "2027-03-31T00:00:00Z", "2027-05-31T00:00:00Z"});
    CHECK(slots("59 23 31 12 *", "UTC", "2026-12-31T23:59:00Z", 1) == V{"2027-12-31T23:59:00Z"});
    CHECK(slots("59 59 23 31 12 *", "UTC", "2026-12-31T23:59:58Z", 2) ==
          V{"2026-12-31T23:59:59Z", "2027-12-31T23:59:59Z"});
    CHECK(slots("0 0 29 2 *", "UTC", "2026-11-27T00:00:00Z", 3) ==
          V{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z", "2036-02-29T00:00:00Z"});
    // 2100 is not a leap year.
    CHECK(slots("0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", 1) == V{"2104-02-29T00:00:00Z"});
    CHECK(slots("0 0 28-31 2 *", "UTC", "2027-02-27T00:00:00Z", 3) ==
          V{"2027-02-28T00:00:00Z", "2028-02-28T00:00:00Z", "2028-02-29T00:00:00Z"});
    CHECK(slots("0 12 * * *", "UTC", "2028-02-28T12:00:00Z", 2) == V{"2028-02-29T12:00:00Z", "2028-03-01T12:00:00Z"});

    // Fast: jumping by field and day, not second by second.
    const Cron leap = Cron::parse("0 0 29 2 *");
    const Cron rare = Cron::parse("59 59 23 29 2 *");
    const TimeZone berlin = TimeZone::locate("Europe/Berlin");
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 200; ++i) {
        REQUIRE(leap.next_after(utc("2028-03-01T00:00:00Z") + i * 1000, berlin));
        REQUIRE(rare.next_after(utc("2028-03-01T00:00:00Z") + i * 1000, berlin));
    }
    // A search second by second would take hours here; jumping takes milliseconds. The bound is
    // loose so a loaded machine or a sanitizer build never fails it.
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));
}

TEST_CASE("Cron: Europe/Berlin spring forward (2026-03-29, 02:00 CET -> 03:00 CEST)", "[cron]") {
    // 02:30 does not exist that day: no run at all then.
    CHECK(slots("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", 3) ==
          V{"2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"});
    // Hourly: 01:00 CET, then 03:00 CEST (02:00 does not exist).
    CHECK(slots("0 * * * *", "Europe/Berlin", "2026-03-28T23:30:00Z", 3) ==
          V{"2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"});
    CHECK(slots("*/30 * * * *", "Europe/Berlin", "2026-03-29T00:15:00Z", 4) ==
          V{"2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z", "2026-03-29T02:00:00Z"});
    // Every 20 seconds: from 01:59:40 CET straight to 03:00:00 CEST.
    CHECK(slots("*/20 * * * * *", "Europe/Berlin", "2026-03-29T00:59:30Z", 3) ==
          V{"2026-03-29T00:59:40Z", "2026-03-29T01:00:00Z", "2026-03-29T01:00:20Z"});
}

TEST_CASE("Cron: Europe/Berlin fall back (2026-10-25, 03:00 CEST -> 02:00 CET)", "[cron]") {
    // 02:30 occurs twice: only the first, 02:30 CEST (00:30 UTC).
    CHECK(slots("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 3) ==
          V{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z"});
    // Hourly: 02:00 CEST, not 02:00 CET again, then 03:00 CET.
    CHECK(slots("0 * * * *", "Europe/Berlin", "2026-10-24T22:30:00Z", 4) ==
          V{"2026-10-24T23:00:00Z", "2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"});
    CHECK(slots("*/30 * * * *", "Europe/Berlin", "2026-10-24T23:15:00Z", 5) ==
          V{"2026-10-24T23:30:00Z", "2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T02:00:00Z",
            "2026-10-25T02:30:00Z"});
    // From inside the second 02:xx hour (02:10 CET = 01:10 UTC): its times already ran.
    CHECK(slots("30 2 * * *", "Europe/Berlin", "2026-10-25T01:10:00Z", 1) == V{"2026-10-26T01:30:00Z"});
    CHECK(slots("0 * * * *", "Europe/Berlin", "2026-10-25T01:10:00Z", 1) == V{"2026-10-25T02:00:00Z"});
    CHECK(slots("*/20 * * * * *", "Europe/Berlin", "2026-10-25T00:59:30Z", 3) ==
          V{"2026-10-25T00:59:40Z", "2026-10-25T02:00:00Z", "2026-10-25T02:00:20Z"});
}

TEST_CASE("Cron: America/New_York DST (2026-03-08 and 2026-11-01)", "[cron]") {
    // 02:30 does not exist on 2026-03-08 (02:00 EST -> 03:00 EDT).
    CHECK(slots("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", 2) ==
          V{"2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"});
    CHECK(slots("0 * * * *", "America/New_York", "2026-03-08T06:30:00Z", 2) ==
          V{"2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"});  // 03:00 EDT, 04:00 EDT
    // 01:30 occurs twice on 2026-11-01 (02:00 EDT -> 01:00 EST): only at 01:30 EDT.
    CHECK(slots("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 3) ==
          V{"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z", "2026-11-03T06:30:00Z"});
    CHECK(slots("0 * * * *", "America/New_York", "2026-11-01T04:30:00Z", 3) ==
          V{"2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z", "2026-11-01T08:00:00Z"});  // 01:00 EDT, 02:00 EST, 03:00 EST
}

TEST_CASE("Cron: a zone with a half-hour offset (Asia/Kolkata, +05:30)", "[cron]") {
    CHECK(slots("0 9 * * *", "Asia/Kolkata", "2026-11-27T00:00:00Z", 2) ==
          V{"2026-11-27T03:30:00Z", "2026-11-28T03:30:00Z"});
    CHECK(slots("@daily", "Asia/Kolkata", "2026-11-27T00:00:00Z", 1) == V{"2026-11-27T18:30:00Z"});
    CHECK(slots("0 * * * *", "Asia/Kolkata", "2026-11-27T00:00:00Z", 2) ==
          V{"2026-11-27T00:30:00Z", "2026-11-27T01:30:00Z"});
    // The local day decides the weekday: Monday 00:15 in Kolkata is Sunday 18:45 UTC.
    CHECK(slots("15 0 * * mon", "Asia/Kolkata", "2026-11-27T00:00:00Z", 1) == V{"2026-11-29T18:45:00Z"});
}

TEST_CASE("Cron: last_at_or_before finds the newest slot after not_before and not after at", "[cron]") {
    CHECK(last("0 2 * * *", "UTC", "2026-11-27T12:00:00Z", "2026-11-20T00:00:00Z") == "2026-11-27T02:00:00Z");
    CHECK(last("0 2 * * *", "UTC", "2026-11-27T02:00:00Z", "2026-11-20T00:00:00Z") == "2026-11-27T02:00:00Z");
    CHECK(last("0 2 * * *", "UTC", "2026-11-27T01:59:59Z", "2026-11-20T00:00:00Z") == "2026-11-26T02:00:00Z");
    CHECK(last("0 2 * * *", "UTC", "2026-11-27T12:00:00Z", "2026-11-27T02:00:00Z") == "none");
    CHECK(last("0 2 * * *", "UTC", "2026-11-27T12:00:00Z", "2026-11-27T01:59:59Z") == "2026-11-27T02:00:00Z");
    CHECK(last("0 2 * * *", "UTC", "2026-11-27T01:00:00Z", "2026-11-27T12:00:00Z") == "none");
    CHECK(last("0 0 29 2 *", "UTC", "2026-11-27T00:00:00Z", "2026-01-01T00:00:00Z") == "none");
    CHECK(last("0 0 29 2 *", "UTC", "2026-11-27T00:00:00Z", "2023-01-01T00:00:00Z") == "2024-02-29T00:00:00Z");
    CHECK(last("0 0 1 jan *", "UTC", "2027-06-01T00:00:00Z", "2026-01-01T00:00:00Z") == "2027-01-01T00:00:00Z");
    CHECK(last("0 0 1 jan *", "Etc/UTC", "2027-06-01T00:00:00Z", "2026-01-01T00:00:00Z") == "2027-01-01T00:00:00Z");
    // An unbounded window still finds the newest slot, at once.
    const std::optional<TimeMs> newest = Cron::parse("0 0 29 2 *").last_at_or_before(
        utc("2026-11-27T00:00:00Z"), std::numeric_limits<TimeMs>::min(), TimeZone::locate("Europe/Berlin"));
    REQUIRE(newest);
    CHECK(iso(*newest) == "2024-02-28T23:00:00Z");
    // Europe/Berlin: 02:30 on 2026-03-29 did not exist; on 2026-10-25 it was at 02:30 CEST.
    CHECK(last("30 2 * * *", "Europe/Berlin", "2026-03-29T12:00:00Z", "2026-03-20T00:00:00Z") == "2026-03-28T01:30:00Z");
    CHECK(last("30 2 * * *", "Europe/Berlin", "2026-10-25T01:10:00Z", "2026-10-20T00:00:00Z") == "2026-10-25T00:30:00Z");
    CHECK(last("0 * * * *", "Europe/Berlin", "2026-10-25T01:30:00Z", "2026-10-20T00:00:00Z") == "2026-10-25T00:00:00Z");
    CHECK(last("0 * * * *", "Europe/Berlin", "2026-03-29T01:30:00Z", "2026-03-20T00:00:00Z") == "2026-03-29T01:00:00Z");
    CHECK(last("0 * * * *", "Europe/Berlin", "2026-03-29T00:59:59Z", "2026-03-20T00:00:00Z") == "2026-03-29T00:00:00Z");

    // A year's window of every second, and of a rare expression, is quick.
    const TimeZone berlin = TimeZone::locate("Europe/Berlin");
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 100; ++i) {
        const TimeMs at = utc("2026-11-27T12:00:00Z") + 500 + i * 1000;
        REQUIRE(Cron::parse("* * * * * *").last_at_or_before(at, at - 366LL * 86400 * 1000, berlin) == at - 500);
        REQUIRE(Cron::parse("0 0 29 2 *").last_at_or_before(at, at - 366LL * 86400 * 1000, berlin) == std::nullopt);
        REQUIRE(Cron::parse("0 0 1 1 *").last_at_or_before(at, at - 366LL * 86400 * 1000, berlin) ==
                utc("2025-12-31T23:00:00Z"));
    }
    // A search second by second would take hours here; jumping takes milliseconds. The bound is
    // loose so a loaded machine or a sanitizer build never fails it.
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));
}

TEST_CASE("Cron: next_after and last_at_or_before agree around the DST changes", "[cron]") {
    for (const char* zone : {"Europe/Berlin", "America/New_York", "Asia/Kolkata"}) {
        for (const char* expression : {"0 * * * *", "*/30 * * * *", "30 2 * * *", "15 1,2,3 * * *", "*/20 */7 * * * *"}) {
            for (const char* day : {"2026-03-07T20:00:00Z", "2026-03-28T20:00:00Z", "2026-10-24T20:00:00Z",
                                    "2026-10-31T20:00:00Z"}) {
                const Cron cron = Cron::parse(expression);
                const TimeZone tz = TimeZone::locate(zone);
                TimeMs t = utc(day);
                for (int i = 0; i < 80; ++i) {
                    INFO(zone << " " << expression << " after " << iso(t));
                    const std::optional<TimeMs> next = cron.next_after(t, tz);
                    REQUIRE(next);
                    CHECK(*next > t);
                    // Nothing between: the newest slot at or before next is next; before it, none after t.
                    CHECK(cron.last_at_or_before(*next, t, tz) == next);
                    CHECK(cron.last_at_or_before(*next - 1, t, tz) == std::nullopt);
                    t += 7 * 60 * 1000 + 13 * 1000;  // a step that lands between slots
                }
            }
        }
    }
}

TEST_CASE("Cron: time zones by IANA name, local dates and times", "[cron]") {
    CHECK(TimeZone::locate("UTC").name() == "UTC");
    CHECK(TimeZone::locate("Europe/Berlin").name() == "Europe/Berlin");
    CHECK_THROWS_AS(TimeZone::locate("Mars/Olympus_Mons"), TimeZoneError);
    CHECK_THROWS_AS(TimeZone::locate(""), TimeZoneError);
    CHECK_THROWS_AS(TimeZone::locate("europe/berlin"), TimeZoneError);
    CHECK_THROWS_AS(TimeZone::locate("../../../etc/passwd"), TimeZoneError);
    // The message is copied inside the handler: e.what() dies with the exception.
    CHECK_THAT([]() -> std::string {
                   try {
                       TimeZone::locate("Mars/Olympus_Mons");
                   } catch (const TimeZoneError& e) {
                       return e.what();
                   }
                   return "";
               }(),
               Catch::Contains("'Mars/Olympus_Mons'"));

    const TimeZone berlin = TimeZone::locate("Europe/Berlin");
    const TimeZone utc_zone = TimeZone::locate("UTC");
    CHECK(berlin.date(utc("2026-11-27T01:00:00Z")) == "2026-11-27");
    CHECK(berlin.time(utc("2026-11-27T01:00:00Z")) == "02:00");
    CHECK(berlin.date(utc("2026-11-26T23:30:00Z")) == "2026-11-27");
    CHECK(berlin.time(utc("2026-11-26T23:30:00Z")) == "00:30");
    CHECK(utc_zone.date(utc("2026-11-26T23:30:00Z")) == "2026-11-26");
    CHECK(utc_zone.time(utc("2026-11-26T23:30:59Z") + 999) == "23:30");
    CHECK(berlin.time(utc("2026-10-25T00:30:00Z")) == "02:30");  // CEST
    CHECK(berlin.time(utc("2026-10-25T01:30:00Z")) == "02:30");  // CET
    CHECK(TimeZone::locate("Asia/Kolkata").time(utc("2026-11-27T00:00:00Z")) == "05:30");

    const TimeZone::Local l = berlin.local(utc("2026-11-29T22:59:59Z") + 500);
    CHECK(l.year == 2026);
    CHECK(l.month == 11);
    CHECK(l.day == 29);
    CHECK(l.hour == 23);
    CHECK(l.minute == 59);
    CHECK(l.second == 59);
    CHECK(l.weekday == 0);  // Sunday
    const TimeZone::Local before_epoch = utc_zone.local(-1);
    CHECK(before_epoch.year == 1969);
    CHECK(before_epoch.day == 31);
    CHECK(before_epoch.second == 59);
    CHECK(before_epoch.weekday == 3);  // Wednesday
}

TEST_CASE("Cron: max_age is a number and m, h, d or w", "[cron]") {
    using std::chrono::milliseconds;
    CHECK(parse_max_age("90m") == milliseconds(90LL * 60 * 1000));
    CHECK(parse_max_age("12h") == milliseconds(12LL * 3600 * 1000));
    CHECK(parse_max_age("7d") == milliseconds(7LL * 86400 * 1000));
    CHECK(parse_max_age("4w") == milliseconds(28LL * 86400 * 1000));
    CHECK(parse_max_age("1m") == milliseconds(60 * 1000));
    CHECK(parse_max_age("15250284452w") == milliseconds(15250284452LL * 604800000LL));
    for (const char* bad : {"", "m", "7", "0m", "0d", "00h", "7s", "7y", "7D", "7 d", " 7d", "7d ", "-7d", "+7d",
                            "1.5h", "7dd", "d7", "15250284453w", "99999999999999999999m"}) {
        INFO(bad);
        CHECK(parse_max_age(bad) == std::nullopt);
    }
}
