"""IKEv2 KDF known answers (SP 800-135 "KDF IKEv2" component test).

Sources:
- NIST ACVP-Server (github.com/usnistgov/ACVP-Server), the IKEv2 KDF unit test
  ``IkeV2Tests.ShouldIkeV2Correctly`` of NIST.CVP.ACVTS.Libraries.Crypto.IKEv2.Tests:
  the "IKEv2 SHA2-224" and "IKEv2 SHA2-256" cases. The ACVP kdf135 prompt/answer JSON
  files themselves were not found in the public index; these are NIST's own samples.
- libreswan (github.com/libreswan/libreswan), the sample run recorded in the comment of
  its IKEv2 CAVS driver (``libreswan-ikev2-cavs ... -l 132 -h 2``, SHA-1, 132-octet DKM).

Field meaning (CAVS "ikev2" names): SKEYSEED = prf(Ni | Nr, g^ir);
DKM = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr); SK_d = first digest-size octets of DKM;
DKM(Child SA) = prf+(SK_d, Ni | Nr); DKM(Child SA D-H) = prf+(SK_d, g^ir (new) | Ni | Nr);
SKEYSEED(Rekey) = prf(SK_d, g^ir (new) | Ni | Nr). DKM lengths are in bits.
"""

from __future__ import annotations

KDF_VECTORS = (
    {
        "source": "ACVP-Server IkeV2Tests 'IKEv2 SHA2-224'",
        "hash": "sha224",
        "dkm_bits": 1056,
        "ni": "1df77d01277c2e29deeaeb353e2c967b",
        "nr": "ebff4bf4945f9734db7b3af4aa7ed796",
        "gir": "e2fcb85717960683ff1700d05718b182a5b0be7133a02ad5b0a4a270",
        "gir_new": "31c5534a6d2e30b97e4d12526166aae0cb8e1d40c630e506252074ca",
        "spi_i": "48765233291b2a42",
        "spi_r": "f5a3ee5d92548a2a",
        "skeyseed": "18ba6f5e429fb65e1ec26d90f929d67b8727e30f049f20ae66d56c9a",
        "dkm": (
            "370393be2f27d4b1dac17e8ab2ab1267985bdd38382a93a837caf1dbbe8cb0d313d2b6579eda"
            "3f552ae5e9a4d1f50d5e9285d8a6d8afbd398de5ab977383443af2a776618c80c52314d05f5f"
            "aefbef95e1bf04bbe3879fe41d6f6ffd6d6a13b8853944f6c1201055abcec41005583a00269a"
            "301747f827e42eff906bf1f86d52fd3870c7"
        ),
        "dkm_child": (
            "ab9ed337fd24bdfa7d493534ee958f0f187ed2927eb12e6ffc2b45b2469ec7f0420e325d865d"
            "da9e2dd86dc53b95f0ecd45a09125359f652f5d64b1dfa8f2dfc6c08209cad70e841546e64ea"
            "a900e8132beeb7b65f994e8934dd6834478ecd03658a691c4ab5bd1e27c5cff7eba343027065"
            "a17333574f914e334b1ef20b08e3293b29b0"
        ),
        "dkm_child_dh": (
            "87831a36e13eff758e1a961caa049cdf0696b9b939bc10a4f76857a04b6f0bfee01b2e54105d"
            "0a8bf2ae45bcc7f1e561e7001e9f58e6a747a4d6b930410d8dff677fbb09e22cbb89d7e19f0b"
            "9b2c7043471e11a2bbed576e2da738e7875575e4bfedfcf39730c36d78ce9656f50f00997862"
            "03128a20a80f5b4fbc145f12ccce3ff143dd"
        ),
        "skeyseed_rekey": "e7b26b386ccbd433d333a872d90cbf99b14fdab6b0e8717f5ff3965a",
    },
    {
        "source": "ACVP-Server IkeV2Tests 'IKEv2 SHA2-256'",
        "hash": "sha256",
        "dkm_bits": 3072,
        "ni": (
            "0a58fea9c1d4fee2e74e1aad6fb02dd5f318eb127465a112be8dc3c04d5dba62eae708f9dc1b"
            "2362afd6ba4bda3cf5000f4979fbcbadbcfda9291593829c4e905c21db0c2ee15175ce77a8a0"
            "dadf25c7f175bc53fd91b636a9b3c50b203de9b9d6dc463dcb4048f101e26498ceaed3afbcd9"
            "31394a7e099392dfff82e5d6fa85c2e8a8ab90ad363a66795dc32798847e405acd87988140f9"
            "73058917273a6b0bafb962c75e2b1a21e79c08beeb82168bf8b4b57f3dce867bf7862a7b8acb"
            "c21be838021913daf64340c055ed17aaf7b6e1d0ca33ae890ddbdb83f4e615aad5e3bff58c3d"
            "b70bac81a0dfbabe5391fc62bca4659e22a0741e01d8d06e67d9bb41"
        ),
        "nr": (
            "e4fdfa68df6171d9eaff8b7b5ad31e7c6098d259f3397c9854cbefe7449b0864c1df16ddece8"
            "b26567560f8d59182a44c19149c2d0d72606a160021ade3d23c7c6936c91a4b6bec37adf38cf"
            "c84b851c68dcee06f81306f63abbefc07e231e3058c49437a557df617eac01663593d2a3e594"
            "699284c0a35eae6931492ccb2a43db72a600a3899205d681d2b76b1280e456339bb10e0c584a"
            "ecfdae31c77a4c40dbcb345f782ac32835d4c220c1e97254ded6a40075dd717b00b69c86a49e"
            "801773026536ae02d58a649827f1ba67610ee936dffd11c9d5a9156631916a0a0046ec0ba42f"
            "56f2a18de83d5d71a985b0cc9eec2c06b3d907ca58454419f374069d"
        ),
        "gir": "9d469de41b4739c7dd01f19aa94f17e48150ae9dbede94832142db19",
        "gir_new": "c2987b0767006c3b9aea491bfed1646a3d7194639492b8d45b23b383",
        "spi_i": "c8de93111750e409",
        "spi_r": "32d51b33508997fa",
        "skeyseed": "eec13ac67c2e072abb684ab4e7b6ce3e7f400af8b96bed48e113497ed337f8d4",
        "dkm": (
            "bc83518f63b762874ac57947cdfae33a8d9724df0b83ee4b6df38c23fc2ad829f4d70b5a68dd"
            "1f5a52416f09758638aedf919c09a17c5298cdb703bb75b1005cba0109739aaa4efd2fe7534c"
            "95ad05e546e4419931270eddcab68ac1589d7fde47f5b9e8d5b614cb24ec3caf515497a9e99e"
            "e6f1b318ff153b539ef071dcaff9b41945dcb780700d69e5dc888a91de195c52825badfd0ab4"
            "c33cec71ab5c2b4badefe5455455ce5d8ae91721a2091bcccc1514e69482c9c8da1d9f0f187e"
            "edda916393570a8c0a8dfabc26d8ed31e8ea47662515972a22d11d692bc1fac6395aecd82a01"
            "ab78daafcd6f3070b1201f158a19331b5d21ceee66fccd2ea37bc07648b9539a52dbf797af53"
            "e31a0e8706dd86cf5081ebabd095f281d23c222dd3bc5abf06869017ca8f751cafcc85abea6b"
            "a88c139d1f32a12f7f486cf57eae5d85551b97f3963616d8f597c70efa98c1e1fa369fb77a80"
            "b1ec5fe533890672c4551172eab1b7fd68ad08c4d4c69f2a867302065ca730aa6915bc2cfb6d"
            "93820977"
        ),
        "dkm_child": (
            "c725012285d56e53244a9baaaf95abfca543708d333a3f3a86ba660e00edd4d489bcd631819f"
            "da0413382edd9f53d1ed718e056c2ad91d38de90f06cd434de70141d051c021e7ddd6e413794"
            "6b4770dca59a4decabdd866852eb557fdd995646613ff2923f5f23aa58c8fbd5ad52cf2eac9b"
            "da97faad5596695f4a747a0f1cc6a1f78b2181138fb19ac24574d2e6b3a40d6e688abb919a27"
            "d793b76568ec66bd099f6f476b705c1472d774a1516a11311b887688f36649e24227640ea8d8"
            "666b9f452217e7103b6f0a92b6adb8fbda650ba58d6ac13ac6f6b6361a5d1c44f1e9f22196c9"
            "6295115c5d01a120e7265962d20353a049286908da776c2165f706a16f43d85fcd319f89c438"
            "6340bcb8ed10df38345cb68af719abaf997e9789a5f19a392dcecd78168ba282f0b30555c7a4"
            "7031a3156d12d7158aa41b863b8394d30fec63120e89cbc5750eed7786f7d5961b1f2e6faca6"
            "41ed776d2211bee757b68b77f94056172553715da9fbd1c9a8728f28a2f3c9714a4917490132"
            "562484cd"
        ),
        "dkm_child_dh": (
            "140a1f2a3c94318ece6edfa8c63f37d8d45982de8b6cbfe34011150db0253e34de3796d4aa57"
            "9954a0bbf234794eb6e7ece2a8f91100f5507df4ee8e66c7813d4c0ff64d484a3494c54b0d9c"
            "605ea24234a49a010ce5c352feb9e1060c8c787229466296cdc9d11bb9d221ed2bb395445724"
            "64254ec02a0fbe777b07402c775eb6d3e53cd16214c707f851942cc7da92a811b6c5c82f29d9"
            "fc3751b0ebff9898fb14372402a6989ffb9cc32dfe7e2cea32fd882e09804d7fea34ce3b5eb6"
            "f303e095c48a452b0a3eccada81af22195ebbaad289aeabdab074c94e751496bde39d868ebf1"
            "d693f36d1c3c672bbb59c9f77aeb68de57d77da231b7f13d6d277f600c3d3086c4de7b3a5912"
            "7f4cb9c118935574f30e1b7c88b52c8c3531fdbd38ee3d14c69e81803ced6e7501fa0180f6d1"
            "10b648272002dc1ad5bf09dc83188011da1d48632e0d2453c8abdd8e9fd32a576aeb9ddfb0a0"
            "24f674441c20a950d9bd8cd7b30933cc0d8e87b55e8aa9d913579b410417b3acc13c14bf73c4"
            "57327873"
        ),
        "skeyseed_rekey": "05f796c8df322a7e33283ae5fa2f376d8d5efa0ac3745fc548e430031424c121",
    },
    {
        "source": "libreswan IKEv2 CAVS driver sample run (SHA-1, -l 132)",
        "hash": "sha1",
        "dkm_bits": 132 * 8,
        "ni": "32b50d5f4a3763f3",
        "nr": "9206a04b26564cb1",
        "gir": "4b2c1f971981a8ad8d0abeafabf38cf75fc8349c148142465ed9c8b516b8be52",
        "gir_new": "863f3c9d06efd39d2b907b97f8699e5dd5251ef64a2a176f36ee40c87d4f9330",
        "spi_i": "34c9e7c188868785",
        "spi_r": "3ff77d760d2b2199",
        "skeyseed": "a9a7b222b59f8f48645f28a1db5b5f5d7479cba7",
        "dkm": (
            "a14293677cc80ff8f9cc0eee30d895da9d8f405666e30ef0dfcb63c634a46002a2a63080e514"
            "a062768b76606f9fa5e992204fc5a670bde3f10d6b027113936a5c55b648a194ae587b0088d5"
            "2204b702c979fa280870d2ed41efa9c549fd11198af1670b143d384bd275c5f594cf266b05eb"
            "adca855e4249520a441a81157435a7a56cc4"
        ),
        "dkm_child": (
            "8059e3ee8810e6c3a91bc8bcd2a7a41151b8d0e6ae239c7b38093ad85ef4c5811a8e7b5d1cda"
            "bd9560b2d5e092d1f24e2d4b85eccdf0ad0dc9abd94b51ee71814ca6dbc8bb51b6309f5b9545"
            "c7eb35cf5580b1e521a8fe20754a2d883ba0c2cf285f524aea6545b33106bc03e614296d319d"
            "41d4b50b3f510b1c0a22f3e664994d234cb4"
        ),
        "dkm_child_dh": (
            "bb43244c1860ad65ee1e211ffe8bb3661750c8f89cb9f547df7f4fa61d37301628190e38c662"
            "32eab4b3ab14c400a5197dd3730ed4820a8a10394d51e1c0400052f63ebd36b0e7ef53aaed31"
            "eba4a5080d7d4b5666023a8bbb5ffb7857240f9a05884d1b7d2f933708450b7b3288f1fc863a"
            "b49fa901227cffc06e27899c7054d56fd74c"
        ),
        "skeyseed_rekey": "63e81194946ebd05df7df5ebf5d8750056bf1f1d",
    },
)
