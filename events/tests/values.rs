//! Every limit of the parsed values, at and just beyond its boundary.
#![allow(clippy::unwrap_used)]

use events::ids::{RoomId, UserId};
use events::values::{
    DisplayName, Emoji, MessageBody, Password, Role, RoomName, Topic, Username, ValidationError,
};

fn chars(c: char, n: usize) -> String {
    std::iter::repeat_n(c, n).collect()
}

mod usernames {
    use super::*;

    #[test]
    fn a_username_of_3_characters_is_accepted() {
        assert_eq!(Username::parse("abc").unwrap().as_str(), "abc");
    }

    #[test]
    fn a_username_of_32_characters_is_accepted() {
        assert!(Username::parse(&chars('a', 32)).is_ok());
    }

    #[test]
    fn a_username_of_2_characters_is_refused() {
        assert_eq!(Username::parse("ab"), Err(ValidationError::UsernameLength));
    }

    #[test]
    fn a_username_of_33_characters_is_refused() {
        assert_eq!(
            Username::parse(&chars('a', 33)),
            Err(ValidationError::UsernameLength)
        );
    }

    #[test]
    fn an_empty_username_is_refused() {
        assert_eq!(Username::parse(""), Err(ValidationError::UsernameLength));
    }

    #[test]
    fn a_username_may_use_lowercase_digits_underscore_dot_and_dash() {
        assert!(Username::parse("a.b_c-9").is_ok());
        assert!(Username::parse("0123456789").is_ok());
        assert!(Username::parse("abcdefghijklmnopqrstuvwxyz").is_ok());
        assert!(Username::parse("___").is_ok());
    }

    #[test]
    fn a_username_with_uppercase_is_refused() {
        assert_eq!(
            Username::parse("Alice"),
            Err(ValidationError::UsernameCharacters)
        );
        assert_eq!(
            Username::parse("ALICE"),
            Err(ValidationError::UsernameCharacters)
        );
    }

    #[test]
    fn a_username_with_other_characters_is_refused() {
        for bad in [
            "al ice",
            "al@ice",
            "al/ice",
            "al+ice",
            "alice!",
            "al\tice",
            "al\0ice",
            "älice",
            "ａｌｉｃｅ",
            "ali😀",
        ] {
            assert_eq!(
                Username::parse(bad),
                Err(ValidationError::UsernameCharacters),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_username_is_not_trimmed_so_surrounding_spaces_are_refused() {
        assert_eq!(
            Username::parse(" alice "),
            Err(ValidationError::UsernameCharacters)
        );
    }

    #[test]
    fn username_errors_share_one_code() {
        assert_eq!(ValidationError::UsernameLength.code(), "invalid_username");
        assert_eq!(
            ValidationError::UsernameCharacters.code(),
            "invalid_username"
        );
    }
}

mod passwords {
    use super::*;

    #[test]
    fn a_password_of_10_characters_is_accepted() {
        assert!(Password::parse(&chars('x', 10)).is_ok());
    }

    #[test]
    fn a_password_of_9_characters_is_refused() {
        assert_eq!(
            Password::parse(&chars('x', 9)),
            Err(ValidationError::PasswordLength)
        );
    }

    #[test]
    fn a_password_of_1024_characters_is_accepted() {
        assert!(Password::parse(&chars('x', 1024)).is_ok());
    }

    #[test]
    fn a_password_of_1025_characters_is_refused() {
        assert_eq!(
            Password::parse(&chars('x', 1025)),
            Err(ValidationError::PasswordLength)
        );
    }

    #[test]
    fn password_length_counts_characters_not_bytes() {
        // '🔑' is 4 bytes: 10 of them are 40 bytes but 10 characters.
        assert!(Password::parse(&chars('🔑', 10)).is_ok());
        assert_eq!(
            Password::parse(&chars('🔑', 9)),
            Err(ValidationError::PasswordLength)
        );
        // 1024 × 'é' is 2048 bytes but 1024 characters.
        assert!(Password::parse(&chars('é', 1024)).is_ok());
        assert_eq!(
            Password::parse(&chars('é', 1025)),
            Err(ValidationError::PasswordLength)
        );
    }

    #[test]
    fn a_password_is_kept_exactly_as_typed() {
        let raw = "  spaces around  ";
        assert_eq!(Password::parse(raw).unwrap().expose(), raw);
    }

    #[test]
    fn a_passwords_debug_never_shows_the_secret() {
        let p = Password::parse("hunter2-hunter2").unwrap();
        let shown = format!("{p:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let pretty = format!("{p:#?}");
        assert!(!pretty.contains("hunter2"), "{pretty}");
        let wrapped = format!("{:?}", Some(p));
        assert!(!wrapped.contains("hunter2"), "{wrapped}");
    }
}

mod display_names {
    use super::*;

    #[test]
    fn a_display_name_of_64_characters_is_accepted() {
        assert!(DisplayName::parse(&chars('d', 64)).is_ok());
        assert!(DisplayName::parse(&chars('é', 64)).is_ok());
    }

    #[test]
    fn a_display_name_of_65_characters_is_refused() {
        assert_eq!(
            DisplayName::parse(&chars('d', 65)),
            Err(ValidationError::DisplayNameTooLong)
        );
        assert_eq!(
            DisplayName::parse(&chars('é', 65)),
            Err(ValidationError::DisplayNameTooLong)
        );
    }

    #[test]
    fn a_display_name_is_counted_as_sent_and_stored_trimmed() {
        // The limit is on what is sent (as the OpenAPI document states it); then it is trimmed.
        let padded = format!(" {} ", chars('d', 62));
        assert_eq!(
            DisplayName::parse(&padded).unwrap().as_str(),
            chars('d', 62)
        );
        assert_eq!(
            DisplayName::parse(&format!(" {}", chars('d', 64))),
            Err(ValidationError::DisplayNameTooLong)
        );
    }

    #[test]
    fn a_display_name_with_nul_is_refused() {
        assert_eq!(
            DisplayName::parse("Al\0ice"),
            Err(ValidationError::ContainsNul)
        );
    }

    #[test]
    fn a_whitespace_only_display_name_becomes_empty() {
        assert_eq!(DisplayName::parse("   ").unwrap().as_str(), "");
    }
}

mod room_names {
    use super::*;

    #[test]
    fn a_room_name_of_1_character_is_accepted() {
        assert_eq!(RoomName::parse("a").unwrap().as_str(), "a");
    }

    #[test]
    fn a_room_name_of_80_characters_is_accepted() {
        assert!(RoomName::parse(&chars('r', 80)).is_ok());
        assert!(RoomName::parse(&chars('ß', 80)).is_ok());
    }

    #[test]
    fn a_room_name_of_81_characters_is_refused() {
        assert_eq!(
            RoomName::parse(&chars('r', 81)),
            Err(ValidationError::RoomNameLength)
        );
    }

    #[test]
    fn a_room_name_is_counted_as_sent_and_stored_trimmed() {
        let padded = format!("  \t{}\n ", chars('r', 75));
        assert_eq!(RoomName::parse(&padded).unwrap().as_str(), chars('r', 75));
        assert_eq!(RoomName::parse("  general  ").unwrap().as_str(), "general");
        assert_eq!(
            RoomName::parse(&format!("{} ", chars('r', 80))),
            Err(ValidationError::RoomNameLength)
        );
    }

    #[test]
    fn an_empty_room_name_is_refused() {
        assert_eq!(RoomName::parse(""), Err(ValidationError::RoomNameLength));
    }

    #[test]
    fn a_whitespace_only_room_name_is_refused() {
        assert_eq!(
            RoomName::parse(" \t\n "),
            Err(ValidationError::RoomNameLength)
        );
    }

    #[test]
    fn a_room_name_with_nul_is_refused() {
        assert_eq!(RoomName::parse("ro\0om"), Err(ValidationError::ContainsNul));
    }
}

mod topics {
    use super::*;

    #[test]
    fn an_empty_topic_is_accepted() {
        assert_eq!(Topic::parse("").unwrap().as_str(), "");
        assert_eq!(Topic::parse("   ").unwrap().as_str(), "");
    }

    #[test]
    fn a_topic_of_1024_characters_is_accepted() {
        assert!(Topic::parse(&chars('t', 1024)).is_ok());
    }

    #[test]
    fn a_topic_of_1025_characters_is_refused() {
        assert_eq!(
            Topic::parse(&chars('t', 1025)),
            Err(ValidationError::TopicTooLong)
        );
    }

    #[test]
    fn a_topic_with_nul_is_refused() {
        assert_eq!(Topic::parse("\0"), Err(ValidationError::ContainsNul));
    }
}

mod message_bodies {
    use super::*;

    #[test]
    fn a_body_of_1_character_is_accepted() {
        assert_eq!(MessageBody::parse("k").unwrap().as_str(), "k");
    }

    #[test]
    fn a_body_of_4000_characters_is_accepted() {
        assert!(MessageBody::parse(&chars('b', 4000)).is_ok());
    }

    #[test]
    fn a_body_of_4001_characters_is_refused() {
        assert_eq!(
            MessageBody::parse(&chars('b', 4001)),
            Err(ValidationError::BodyTooLong)
        );
    }

    #[test]
    fn a_body_is_counted_as_sent_and_stored_trimmed() {
        let padded = format!("\n\n  {}  \t", chars('b', 3993));
        assert_eq!(
            MessageBody::parse(&padded).unwrap().as_str(),
            chars('b', 3993)
        );
        assert_eq!(
            MessageBody::parse(&format!("\n{}", chars('b', 4000))),
            Err(ValidationError::BodyTooLong)
        );
    }

    #[test]
    fn a_body_counts_multibyte_characters_as_characters() {
        // 4000 × '😀' is 16000 bytes.
        assert!(MessageBody::parse(&chars('😀', 4000)).is_ok());
        assert_eq!(
            MessageBody::parse(&chars('😀', 4001)),
            Err(ValidationError::BodyTooLong)
        );
    }

    #[test]
    fn an_empty_body_is_refused() {
        assert_eq!(MessageBody::parse(""), Err(ValidationError::BodyEmpty));
    }

    #[test]
    fn a_whitespace_only_body_is_refused() {
        assert_eq!(
            MessageBody::parse(" \t\r\n\u{3000}"),
            Err(ValidationError::BodyEmpty)
        );
    }

    #[test]
    fn a_body_with_nul_is_refused() {
        assert_eq!(
            MessageBody::parse("hello\0world"),
            Err(ValidationError::ContainsNul)
        );
        assert_eq!(MessageBody::parse("\0"), Err(ValidationError::ContainsNul));
    }

    #[test]
    fn inner_whitespace_of_a_body_is_kept() {
        assert_eq!(
            MessageBody::parse("  line one\n\n  line two  ")
                .unwrap()
                .as_str(),
            "line one\n\n  line two"
        );
    }

    #[test]
    fn body_errors_share_one_code() {
        assert_eq!(ValidationError::BodyEmpty.code(), "invalid_body");
        assert_eq!(ValidationError::BodyTooLong.code(), "invalid_body");
    }
}

mod emoji {
    use super::*;

    #[test]
    fn a_single_emoji_is_accepted() {
        assert_eq!(Emoji::parse("👍").unwrap().as_str(), "👍");
    }

    #[test]
    fn a_shortcode_is_accepted() {
        assert!(Emoji::parse(":thumbs_up:").is_ok());
    }

    #[test]
    fn a_zwj_sequence_is_accepted() {
        // 👨‍👩‍👧‍👦: 4 × 4-byte emoji + 3 × 3-byte ZWJ = 25 bytes.
        let family = "👨\u{200d}👩\u{200d}👧\u{200d}👦";
        assert_eq!(family.len(), 25);
        assert!(Emoji::parse(family).is_ok());
    }

    #[test]
    fn an_emoji_of_32_bytes_is_accepted() {
        assert!(Emoji::parse(&chars('e', 32)).is_ok());
        // 8 × 4 bytes.
        assert!(Emoji::parse(&chars('😀', 8)).is_ok());
    }

    #[test]
    fn an_emoji_of_33_characters_is_refused() {
        assert_eq!(
            Emoji::parse(&chars('e', 33)),
            Err(ValidationError::EmojiInvalid)
        );
        // The limit is in characters (as the OpenAPI document can state it), not bytes.
        assert_eq!(
            Emoji::parse(&chars('😀', 33)),
            Err(ValidationError::EmojiInvalid)
        );
        assert!(Emoji::parse(&chars('😀', 32)).is_ok());
        // A no-break space is whitespace; a control character is refused too.
        assert_eq!(Emoji::parse("a\u{a0}b"), Err(ValidationError::EmojiInvalid));
        assert_eq!(Emoji::parse("a\u{85}"), Err(ValidationError::EmojiInvalid));
    }

    #[test]
    fn an_empty_emoji_is_refused() {
        assert_eq!(Emoji::parse(""), Err(ValidationError::EmojiInvalid));
    }

    #[test]
    fn an_emoji_with_whitespace_is_refused() {
        for bad in [
            " ",
            "👍 ",
            " 👍",
            "a b",
            "a\tb",
            "a\nb",
            "a\u{a0}b",
            "a\u{3000}b",
        ] {
            assert_eq!(
                Emoji::parse(bad),
                Err(ValidationError::EmojiInvalid),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_emoji_with_a_slash_is_refused() {
        assert_eq!(Emoji::parse("/"), Err(ValidationError::EmojiInvalid));
        assert_eq!(Emoji::parse("a/b"), Err(ValidationError::EmojiInvalid));
    }

    #[test]
    fn an_emoji_with_a_control_character_is_refused() {
        assert_eq!(Emoji::parse("a\0b"), Err(ValidationError::EmojiInvalid));
        assert_eq!(Emoji::parse("\u{7f}"), Err(ValidationError::EmojiInvalid));
    }
}

mod error_codes {
    use super::*;

    #[test]
    fn every_validation_error_has_its_stable_code() {
        let expected = [
            (ValidationError::UsernameLength, "invalid_username"),
            (ValidationError::UsernameCharacters, "invalid_username"),
            (ValidationError::PasswordLength, "invalid_password"),
            (ValidationError::DisplayNameTooLong, "invalid_display_name"),
            (ValidationError::RoomNameLength, "invalid_room_name"),
            (ValidationError::TopicTooLong, "invalid_topic"),
            (ValidationError::BodyEmpty, "invalid_body"),
            (ValidationError::BodyTooLong, "invalid_body"),
            (ValidationError::ContainsNul, "invalid_text"),
            (ValidationError::EmojiInvalid, "invalid_emoji"),
        ];
        for (error, code) in expected {
            assert_eq!(error.code(), code, "{error:?}");
        }
    }
}

mod roles {
    use super::*;

    #[test]
    fn only_owner_and_admin_moderate() {
        assert!(Role::Owner.moderates());
        assert!(Role::Admin.moderates());
        assert!(!Role::Member.moderates());
    }
}

mod ids {
    use super::*;

    #[test]
    fn the_direct_room_of_a_pair_is_the_same_whichever_user_asks() {
        let (a, b) = (UserId::new(), UserId::new());
        assert_eq!(RoomId::direct(a, b), RoomId::direct(b, a));
    }

    #[test]
    fn the_direct_room_of_a_pair_is_stable_across_calls() {
        let (a, b) = (UserId::new(), UserId::new());
        assert_eq!(RoomId::direct(a, b), RoomId::direct(a, b));
    }

    #[test]
    fn different_pairs_have_different_direct_rooms() {
        let (a, b, c) = (UserId::new(), UserId::new(), UserId::new());
        assert_ne!(RoomId::direct(a, b), RoomId::direct(a, c));
        assert_ne!(RoomId::direct(a, b), RoomId::direct(b, c));
        assert_ne!(RoomId::direct(a, c), RoomId::direct(b, c));
    }

    #[test]
    fn a_direct_room_id_is_a_name_based_uuid() {
        let id = RoomId::direct(UserId::new(), UserId::new());
        assert_eq!(id.as_uuid().get_version_num(), 5);
    }

    #[test]
    fn stream_ids_are_prefixed_with_the_stream_type() {
        let u = UserId::new();
        let r = RoomId::new();
        assert_eq!(u.stream_id(), format!("user-{u}"));
        assert_eq!(r.stream_id(), format!("room-{r}"));
    }

    #[test]
    fn an_id_round_trips_through_its_stream_id() {
        let u = UserId::new();
        let r = RoomId::new();
        assert_eq!(UserId::from_stream_id(&u.stream_id()), Some(u));
        assert_eq!(RoomId::from_stream_id(&r.stream_id()), Some(r));
    }

    #[test]
    fn a_stream_of_another_kind_or_a_malformed_one_is_no_id() {
        let r = RoomId::new();
        assert_eq!(UserId::from_stream_id(&r.stream_id()), None);
        assert_eq!(RoomId::from_stream_id(&format!("room-{r}x")), None);
        assert_eq!(RoomId::from_stream_id(&r.to_string()), None);
        assert_eq!(RoomId::from_stream_id("room-"), None);
    }

    #[test]
    fn an_id_round_trips_through_its_text_form() {
        let u = UserId::new();
        assert_eq!(u.to_string().parse::<UserId>().unwrap(), u);
    }
}
