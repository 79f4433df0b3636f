import Testing
import TributaryCore

@Suite struct RowMemberTests {
    /// What `forEachMember` reports for each member: name, kind, text, raw.
    func members(_ json: String) throws -> [(String, RowMember.Kind, String, String)] {
        let row = try EntityRow(validating: Array(json.utf8))
        var seen: [(String, RowMember.Kind, String, String)] = []
        row.forEachMember { name, member in
            seen.append(
                (
                    String(decoding: name, as: UTF8.self), member.kind, String(decoding: member.text, as: UTF8.self),
                    String(decoding: member.raw, as: UTF8.self)
                ))
        }
        return seen
    }

    @Test func everyKindWithItsTextAndRawJSON() throws {
        let seen = try members(
            #"{"title":"Café \"x\"","n":-12.5e3,"i":42,"t":true,"f":false,"z":null,"o":{"a":[1,"}"]},"a":[],"e":""}"#)
        #expect(seen.map(\.0) == ["title", "n", "i", "t", "f", "z", "o", "a", "e"])
        #expect(seen[0].1 == .string && seen[0].2 == #"Café "x""# && seen[0].3 == #""Café \"x\"""#)
        #expect(seen[1].1 == .number && seen[1].2 == "-12.5e3")
        #expect(seen[2].2 == "42")
        #expect(seen[3].1 == .bool(true) && seen[4].1 == .bool(false) && seen[5].1 == .null)
        #expect(seen[6].1 == .container && seen[6].3 == #"{"a":[1,"}"]}"#)
        #expect(seen[7].3 == "[]")
        #expect(seen[8].1 == .string && seen[8].2 == "")
    }

    @Test func escapedNamesAreResolvedAndRepeatsComeInOrder() throws {
        let seen = try members(#"{"n\u006fteId":"a\u00e9\n","noteId":"b","noteId":"c"}"#)
        #expect(seen.map(\.0) == ["noteId", "noteId", "noteId"])
        #expect(seen.map(\.2) == ["aé\n", "b", "c"])
    }

    /// The walk skips members without validating them again (the row is valid by construction),
    /// finding each string's end by its quote: escaped quotes and backslashes before a closing
    /// quote, and brackets or quotes inside nested strings, must not end a member early.
    @Test func skippedMembersEndWhereTheirJSONEnds() throws {
        let tricky = [
            #""a\\""#, #""\\\"""#, #""\"}\"]""#, #""x\\\\""#, #"{"k":"}","l":["]","\"",{"m":"\\"}]}"#,
            #"[[],{},"[{",-0.5e-3,true,null]"#, #""é\u00e9\n""#, #""""#, "12", "false",
        ]
        for value in tricky {
            let json =
                #"{"before":"#
                + value + #","noteId":"n1","after":"#
                + value + "}"
            let row = try EntityRow(validating: Array(json.utf8))
            #expect(row.value(forKey: "noteId") == .string("n1"), "after \(value)")
            #expect(row.value(forKey: "after") == (try JSONParser.parse(Array(value.utf8))), "\(value)")
            let seen = try members(json)
            #expect(seen.map(\.0) == ["before", "noteId", "after"], "\(value)")
            #expect(seen.map(\.3) == [value, #""n1""#, value])
        }
    }

    @Test func anEmptyRowHasNoMembers() throws {
        #expect(try members("{}").isEmpty)
    }
}
