import Testing

@testable import TributaryCore

// Millisecond values computed with Python: calendar.timegm(datetime.strptime(...)) * 1000 + ms.
@Suite("UTCDateTime")
struct UTCDateTimeTests {
    @Test(
        "parses Trilium's format to the epoch milliseconds Python computes, and formats it back",
        arguments: [
            ("2023-11-08 16:43:44.204Z", 1_699_461_824_204),
            ("1970-01-01 00:00:00.000Z", 0),
            ("1969-12-31 23:59:59.999Z", -1),
            ("2024-02-29 12:00:00.001Z", 1_709_208_000_001),
            ("2000-02-29 23:59:59.999Z", 951_868_799_999),
            ("0001-01-01 00:00:00.000Z", -62_135_596_800_000),
            ("0000-01-01 00:00:00.000Z", -62_167_219_200_000),
            ("9999-12-31 23:59:59.999Z", 253_402_300_799_999),
            ("2024-01-01 00:00:00.005Z", 1_704_067_200_005),
            ("1900-03-01 00:00:00.000Z", -2_203_891_200_000),
            ("2038-01-19 03:14:08.000Z", 2_147_483_648_000),
        ] as [(String, Int64)])
    func roundTrip(text: String, milliseconds: Int64) throws {
        let date = try #require(UTCDateTime(text))
        #expect(date.millisecondsSinceEpoch == milliseconds)
        #expect(date.description == text)
        #expect(UTCDateTime(millisecondsSinceEpoch: milliseconds).description == text)
        #expect(UTCDateTime(millisecondsSinceEpoch: milliseconds) == date)
    }

    @Test(
        "leap days exist only in leap years",
        arguments: [
            ("2024-02-29 00:00:00.000Z", true),
            ("2000-02-29 00:00:00.000Z", true),
            ("2023-02-29 00:00:00.000Z", false),
            ("1900-02-29 00:00:00.000Z", false),
            ("2100-02-29 00:00:00.000Z", false),
            ("2023-02-28 23:59:59.999Z", true),
            ("2024-02-30 00:00:00.000Z", false),
        ])
    func leapDays(text: String, valid: Bool) {
        #expect((UTCDateTime(text) != nil) == valid)
    }

    @Test(
        "anything but exactly YYYY-MM-DD HH:MM:SS.sssZ is refused",
        arguments: [
            "",
            "2023-11-08T16:43:44.204Z",  // ISO 'T' separator
            "2023-11-08 16:43:44.204",  // missing Z
            "2023-11-08 16:43:44.204z",  // lowercase z
            "2023-11-08 16:43:44.20Z",  // short millis
            "2023-11-08 16:43:44.2045Z",  // long millis
            "2023-11-08 16:43:44Z",  // no millis
            "2023-11-08 16:43:44,204Z",  // comma
            "2023/11/08 16:43:44.204Z",  // wrong date separators
            "2023-11-08 16-43-44.204Z",  // wrong time separators
            "2023-11-08  16:43:44.204Z",  // two spaces
            "2023-11-08 16:43:44.204+0000",  // offset
            "2023-11-08 16:43:44.204Z ",  // trailing space
            " 2023-11-08 16:43:44.204Z",  // leading space
            "23-11-08 16:43:44.204Z",  // two-digit year
            "+2023-11-08 16:43:44.204Z",  // signed year
            "2023-1a-08 16:43:44.204Z",  // non-digit
            "2023-11-08 16:43:4a.204Z",
            "2023-13-08 16:43:44.204Z",  // month 13
            "2023-00-08 16:43:44.204Z",  // month 0
            "2023-11-00 16:43:44.204Z",  // day 0
            "2023-11-31 16:43:44.204Z",  // November has 30 days
            "2023-04-31 00:00:00.000Z",
            "2023-01-32 00:00:00.000Z",
            "2023-11-08 24:00:00.000Z",  // hour 24
            "2023-11-08 23:60:00.000Z",  // minute 60
            "2023-11-08 23:59:60.000Z",  // leap second
            "\u{ff12}023-11-08 16:43:44.204Z",  // fullwidth digit
            "2023-11-08 16:43:44.-04Z",
        ])
    func invalid(text: String) {
        #expect(UTCDateTime(text) == nil)
    }

    @Test("ordering of values equals ordering of the strings")
    func ordering() throws {
        let texts = [
            "2023-11-08 16:43:44.204Z", "2023-11-08 16:43:44.205Z", "2023-11-08 16:43:45.000Z",
            "2023-11-08 16:44:00.000Z", "2023-11-08 17:00:00.000Z", "2023-11-09 00:00:00.000Z",
            "2023-12-01 00:00:00.000Z", "2024-01-01 00:00:00.000Z", "1969-12-31 23:59:59.999Z",
            "1970-01-01 00:00:00.000Z", "0001-01-01 00:00:00.000Z", "9999-12-31 23:59:59.999Z",
            "2023-11-08 16:43:44.099Z", "2023-11-08 16:43:44.100Z",
        ]
        let dates = try texts.map { try #require(UTCDateTime($0)) }
        #expect(dates.sorted().map(\.description) == texts.sorted())
        for (a, ta) in zip(dates, texts) {
            for (b, tb) in zip(dates, texts) {
                #expect((a < b) == (ta < tb))
                #expect((a == b) == (ta == tb))
            }
        }
    }

    @Test(
        "successor is one millisecond later, carrying into seconds, days and years",
        arguments: [
            ("2023-11-08 16:43:44.204Z", "2023-11-08 16:43:44.205Z"),
            ("2023-11-08 16:43:44.999Z", "2023-11-08 16:43:45.000Z"),
            ("2023-12-31 23:59:59.999Z", "2024-01-01 00:00:00.000Z"),
            ("2024-02-28 23:59:59.999Z", "2024-02-29 00:00:00.000Z"),
            ("2023-02-28 23:59:59.999Z", "2023-03-01 00:00:00.000Z"),
            ("1969-12-31 23:59:59.999Z", "1970-01-01 00:00:00.000Z"),
        ])
    func successor(text: String, next: String) throws {
        let date = try #require(UTCDateTime(text))
        #expect(date.successor.description == next)
        #expect(date.successor.millisecondsSinceEpoch == date.millisecondsSinceEpoch + 1)
        #expect(date < date.successor)
    }

    @Test("now() is a plausible current time that round-trips through its text")
    func now() throws {
        let now = UTCDateTime.now()
        // After 2024-01-01 and before 2100-01-01.
        #expect(now.millisecondsSinceEpoch > 1_704_067_200_000)
        #expect(now.millisecondsSinceEpoch < 4_102_444_800_000)
        let text = now.description
        #expect(text.utf8.count == 24)
        #expect(try #require(UTCDateTime(text)) == now)
    }
}
