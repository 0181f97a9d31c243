"""draft-mcgrew-gcm-test-01 §4 (Test Cases for the use of GCM and GMAC in IPsec ESP),
AES-GCM test cases 1-5. ``aad`` is SPI || [seq_hi ||] seq_lo (12 bytes when the case
uses extended sequence numbers); ``plaintext`` is the ESP payload with its padding and
trailer; ``ciphertext`` ends with the 16-byte ICV."""

from __future__ import annotations

CASES = [
    dict(
        name="case 1: AES-128, ESN",
        key="4c80cdefbb5d10da906ac73c3613a634",
        salt="2e443b68",
        iv="4956ed7e3b244cfe",
        aad="000043218765432100000000",
        plaintext="45000048699a000080114db7c0a80102c0a801010a9bf15638d3010000010000"
        "00000000045f736970045f756470037369700963796265726369747902646b00"
        "0021000101020201",
        ciphertext="fecf537e729d5b07dc30df528dd22b768d1b98736696a6fd348509fa13ceac34"
        "cfa2436f14a3f3cf65925bf1f4a13c5d15b21e1884f5ff6247aeabb786b93bce"
        "61bc17d768fd9732459018148f6cbe722fd04796562dfdb4",
    ),
    dict(
        name="case 2: AES-192",
        key="feffe9928665731c6d6a8f9467308308feffe9928665731c",
        salt="cafebabe",
        iv="facedbaddecaf888",
        aad="0000a5f80000000a",
        plaintext="45000028a4ad4000400678800a01038f0a010612802306b8cb712602dd6bb03e"
        "501016d075680001",
        ciphertext="a5b1f8066029aea40e598b8122de02420938b3ab33f828e687b8858b5bfbdbd0"
        "315b27452144cc7795457b9652037f5318027b5b4cd7a636",
    ),
    dict(
        name="case 3: AES-256",
        key="abbccddef00112233445566778899aababbccddef00112233445566778899aab",
        salt="11223344",
        iv="0102030405060708",
        aad="4a2cbfe300000002",
        plaintext="4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee000000000"
        "7002400020bf0000020405b40101040201020201",
        ciphertext="ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763"
        "748a637985771d347f0545659f14e99def842d8eb335f4eecfdbf831824b4c4915956c96",
    ),
    dict(
        name="case 4: AES-128, all-zero key",
        key="00000000000000000000000000000000",
        salt="00000000",
        iv="0000000000000000",
        aad="0000000000000001",
        plaintext="4500003c99c500008001cb7a40679318010101010800075c0200440061626364"
        "65666768696a6b6c6d6e6f707172737475767761626364656667686901020201",
        ciphertext="4688daf2f973a392732909c331d56d60f694abaa414b5e7ff5fdcdfff5e9a284"
        "456476492719ffb64de7d9dca1e1d894bc3bd57873ed4d181d19d4d5c8c18af3"
        "f821d496eeb096e98ad2b69e4799c71d",
    ),
    dict(
        name="case 5: AES-128, dummy-size payload, seq 0xffffffff",
        key="7d773d00c144c525ac619d18c84a3f47",
        salt="d9664267",
        iv="43457e9182443bc6",
        aad="335467aeffffffff",
        plaintext="01020201",
        ciphertext="437f866bcb3f699fe9b0822bac961c4504bef270",
    ),
]
