from medvision.cli import main


def test_data_inspect(shared_data, capsys):
    assert main(["data", "inspect", "breastmnist", "--data-root", str(shared_data)]) == 0
    out = capsys.readouterr().out
    assert "breastmnist_28: 780 images" in out and "malignant" in out


def test_data_inspect_bad_input_exits_2_without_traceback(tmp_path, capsys):
    assert main(["data", "inspect", "nowhere", "--source", "folder", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err


def test_book_unknown_profile(capsys):
    assert main(["book", "--profile", "nope", "--no-build"]) == 2
    assert "profile 'nope' not found" in capsys.readouterr().err


def test_data_fetch_without_handle_exits_2(capsys):
    assert main(["data", "fetch", "kvasir"]) == 2
    assert "put the files as" in capsys.readouterr().err
